"""Calibration wizard: apply known reference values, sample the raw reading at each, fit by least
squares on the host (host_tools.bench.fit), check the fit, show it with the before/after error at
every reference, and only then (confirmed) write the fitted stage with its provenance into the
board's /config.json, atomically. The device only evaluates the coefficients.

Checks, before anything is written:
- a fit needs at least degree + 1 distinct reference values (refused before the board is touched);
- the raw reading must change with the reference (zero gain: the reference was not applied, or the
  sensor is stuck or disconnected) and, for a linear fit, rise or fall with it at every point
  (a bad reading); a polynomial must be monotonic over the calibrated range;
- the largest residual must be within the metric's bench tolerance (bench_limits.json:
  residual_max / residual_max_pct, else the metric's noise limit at the largest reference);
  beyond it the calibration is refused unless forced;
- the new config must pass the firmware's own validator (edge.config, run here on CPython).

The fit replaces the metric's transfer stages (linear, two_point, polynomial, table, offset,
multiply, kelvin_to_celsius) by one fitted stage at the place of the first of them; filters
(clamp, round, ema, mean, median, filter_out) stay where they are. Provenance goes to
metrics.<m>.provenance: date, method, reference and raw values, residuals, samples.

The board side is the firmware's bench module (firmware/benchside.py through
host_tools.bench.session). On the virtual board the simulation applies each reference; on a real
board the person applies it (the wizard waits for Enter).
"""
import datetime
import json
import math
import statistics
import sys

from host_tools import FIRMWARE_DIR
from host_tools.bench import check
from host_tools.bench.session import BenchBoard
from host_tools.errors import EXIT_FAILED, EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError

TRANSFER_STAGES = ("linear", "two_point", "polynomial", "table", "offset", "multiply", "kelvin_to_celsius")
EXIT_WRITTEN, EXIT_REFUSED = 0, EXIT_FAILED


def _firmware(module):
    """A firmware module on CPython (the board's own validator and calibration stages)."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    import importlib
    return importlib.import_module(module)


def _fitname(degree):
    return "linear" if degree == 1 else f"degree-{degree}"


def check_request(references, degree, samples):
    """Refuse what cannot give a calibration before the board is touched (exit code 2)."""
    if samples < 1:
        raise EdgeshadowError(f"--samples {samples}: must be at least 1", exit_code=EXIT_USAGE)
    if references is None:
        return
    refs = " ".join(f"{r:g}" for r in references)
    for r in references:
        if not math.isfinite(r):
            raise EdgeshadowError(f"--ref {refs}: {r} is not a finite number", exit_code=EXIT_USAGE)
    distinct = len(set(references))
    if distinct < degree + 1:
        raise EdgeshadowError(f"--ref {refs}: a {_fitname(degree)} fit needs at least {degree + 1} distinct "
                              f"reference values, got {distinct}", exit_code=EXIT_USAGE)


# ---------------------------------------------------------------- sampling

def sample_raw(board, n, max_attempts=None):
    """n good raw reads of the session's metric, retrying failed reads up to `max_attempts` reads
    in all (default 3n): (median raw, [raws], {status: count} of the failures). The median keeps
    one odd read from moving the calibration point."""
    max_attempts = max_attempts or 3 * n
    raws, failed, tried = [], {}, 0
    while len(raws) < n and tried < max_attempts:
        k = min(n - len(raws), max_attempts - tried)
        rows = board.read(k, timeout=10 + 5 * k)
        tried += k
        for _, (raw,), (st,), _ in rows:
            if st == "ok" and raw is not None:
                raws.append(raw)
            else:
                failed[st] = failed.get(st, 0) + 1
    if len(raws) < n:
        what = ", ".join(f"{k} x{v}" for k, v in sorted(failed.items())) or "no value"
        hint = ("the sensor did not answer: check its wiring" if "disconnected" in failed
                else "the readings were not usable: see the statuses")
        raise EdgeshadowError(f"only {len(raws)} of {tried} reads succeeded ({what}); {hint}")
    return statistics.median(raws), raws, failed


def _references(references, ask, board, metric, unit, refs, need, say):
    """The reference values one by one: from --ref (on a real board the person applies each and
    presses Enter), or typed by the person until an empty answer with enough distinct values."""
    virtual = board.info["virtual"]
    if references is not None:
        for ref in references:
            if not virtual:
                with Keepalive(board):
                    ask(f"apply {ref:g} {unit} to {metric}, then press Enter ")
            yield ref
        return
    while True:
        with Keepalive(board):
            answer = ask(f"reference {len(refs) + 1}: apply a known {metric}, type its value in "
                         f"{unit or 'its unit'} and press Enter (empty to finish) ").strip()
        if not answer:
            if len(set(refs)) >= need:
                return
            say(f"need at least {need} distinct points, have {len(set(refs))}")
            continue
        try:
            ref = float(answer)
        except ValueError:
            ref = math.nan
        if not math.isfinite(ref):
            say(f"not a number: {answer!r}")
            continue
        yield ref


def collect_points(board, metric, references, samples, degree, ask, say):
    """Apply each reference and sample the raw reading: (references, raw medians, raw stdevs)."""
    unit = board.info["units"][metric]
    refs, raws, stdevs = [], [], []
    for ref in _references(references, ask, board, metric, unit, refs, degree + 1, say):
        if board.info["virtual"]:
            board.hold(metric, ref)
        med, xs, failed = sample_raw(board, samples)
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        refs.append(ref)
        raws.append(med)
        stdevs.append(sd)
        retried = f", {sum(failed.values())} failed read(s) retried" if failed else ""
        say(f"  reference {ref:g} {unit}: raw median {med:.6g} (sd {sd:.3g}, {len(xs)} reads{retried})")
    return refs, raws, stdevs


class Keepalive:
    """While the person answers a prompt, feed the board's watchdog every few seconds (the
    firmware's watchdog keeps running after Ctrl-C and cannot be stopped)."""

    def __init__(self, board, every_s=5.0):
        import threading
        self.board, self.every_s = board, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.every_s):
            try:
                self.board.feed()
            except EdgeshadowError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# ---------------------------------------------------------------- the fit and its checks

def tolerance(metric, info, refs, limits_data=None):
    """The largest residual the metric's bench limits allow at these references (None: no limit):
    residual_max / residual_max_pct (of the largest reference), else the noise limit there."""
    lim = check.limits_for(metric, board=info.get("board"), sku=info.get("sku"),
                           driver=(info.get("drivers") or {}).get(metric), data=limits_data)
    top = max(abs(r) for r in refs)
    allowed = [lim["residual_max"]] if "residual_max" in lim else []
    if "residual_max_pct" in lim:
        allowed.append(top * lim["residual_max_pct"] / 100.0)
    return min(allowed) if allowed else check._noise_limit(lim, top)


_ZERO_GAIN = ("zero gain: the raw reading hardly changed between references (%.6g .. %.6g); was each "
              "reference applied? is the sensor connected and live?")


def problems(f, refs, raws, degree):
    """Why this fit must not be written (sentences; empty: it may)."""
    out = []
    ref_span = max(refs) - min(refs)
    raw_span = max(raws) - min(raws)
    if raw_span == 0 or not math.isfinite(f.gain) or abs(f.gain) * raw_span < 1e-6 * ref_span:
        out.append(_ZERO_GAIN % (min(raws), max(raws)))
        return out
    if degree == 1:
        order = sorted(zip(refs, raws))
        steps = [(b[1] - a[1]) * (1 if f.gain > 0 else -1) for a, b in zip(order, order[1:]) if b[0] != a[0]]
        bad = [i for i, s in enumerate(steps) if s <= 0]
        if bad:
            a, b = order[bad[0]], order[bad[0] + 1]
            out.append(f"not monotonic: the raw reading should {'rise' if f.gain > 0 else 'fall'} with the "
                       f"reference, but reference {a[0]:g} read {a[1]:.6g} and {b[0]:g} read {b[1]:.6g} "
                       f"(a bad reading? repeat that point)")
    else:
        lo, hi = min(raws), max(raws)
        slopes = [sum(k * c * x ** (k - 1) for k, c in enumerate(f.coefficients) if k)
                  for x in (lo + (hi - lo) * i / 200 for i in range(201))]
        if min(slopes) < 0 < max(slopes):
            out.append(f"not monotonic: the degree-{degree} fit turns within the calibrated range "
                       f"({lo:.6g} .. {hi:.6g}); use a lower degree or more references")
    return out


def _decimals(refs):
    """Digits after the point for values in the references' unit: about five significant."""
    top = max(abs(r) for r in refs) or 1.0
    return max(0, min(6, 5 - int(math.floor(math.log10(top)))))


def evaluate(metric, info, refs, raws, stdevs, degree, samples, cfg_text, limits_data=None, now=None):
    """The fit, its checks, the before/after table and the new config text (validated)."""
    from host_tools.bench import fit as fitlib  # numpy: only once there is something to fit
    if len(set(raws)) < degree + 1:  # nothing to fit: the reading did not follow the references
        raise EdgeshadowError("not written: " + _ZERO_GAIN % (min(raws), max(raws)), exit_code=EXIT_REFUSED)
    f = fitlib.fit_polynomial(list(zip(raws, refs)), degree)
    tol = tolerance(metric, info, refs, limits_data)
    new_text, cfg = updated_config(cfg_text, metric, f, refs, raws, samples, stdevs, now=now)
    calibration = _firmware("edge.calibration")
    before_stages = info["calibration"].get(metric) or []
    after_stages = cfg["metrics"][metric]["calibration"]
    points = []
    for ref, raw, sd in zip(refs, raws, stdevs):
        before = calibration.build_chain(before_stages)(raw)  # a fresh chain: no filter state
        after = calibration.build_chain(after_stages)(raw)
        points.append({"reference": ref, "raw": raw, "raw_stdev": sd, "before": before, "after": after,
                       "error_before": None if before is None else before - ref,
                       "error_after": None if after is None else after - ref})
    return {"metric": metric, "unit": info["units"][metric], "board": info.get("board"),
            "fit": {"kind": f.kind, "degree": degree, "coefficients": f.coefficients, "gain": f.gain,
                    "offset": f.offset, "r2": f.r2, "residual_rms": f.rms, "residual_max": f.max_abs_residual},
            "tolerance": tol, "points": points, "problems": problems(f, refs, raws, degree),
            "within_tolerance": tol is None or f.max_abs_residual <= tol,
            "calibration_before": before_stages, "calibration": after_stages,
            "provenance": cfg["metrics"][metric]["provenance"], "decimals": _decimals(refs),
            "written": False, "_config_text": new_text}


def fit_lines(r):
    """The fit and the before/after error at every reference, as text lines."""
    u, d, f = r["unit"], r["decimals"], r["fit"]
    unit = f" {u}" if u else ""

    def v(x, signed=False):
        if x is None:
            return "-"
        x = round(x, d) + 0.0  # no "-0.0"
        return f"{x:{'+' if signed else ''}.{d}f}"

    if f["kind"] == "linear":
        shape = f"gain {f['gain']:.6g}, offset {v(f['offset'])}{unit}"
    else:
        shape = "coefficients " + ", ".join(f"{c:.6g}" for c in f["coefficients"]) + " (ascending powers)"
    r2 = "-" if f["r2"] is None else f"{f['r2']:.6f}"
    tol = "none set" if r["tolerance"] is None else f"{v(r['tolerance'])}{unit}"
    lines = [f"{r['metric']}: {f['kind']} fit over {len(r['points'])} references{' (' + u + ')' if u else ''}",
             f"  {shape}; R\u00b2 {r2}; max residual {v(f['residual_max'])}{unit} (tolerance {tol})",
             f"  {'reference':>12} {'raw':>12} {'before':>12} {'error':>10} {'after':>12} {'error':>10}"]
    for p in r["points"]:
        lines.append(f"  {v(p['reference']):>12} {p['raw']:>12.6g} {v(p['before']):>12} "
                     f"{v(p['error_before'], True):>10} {v(p['after']):>12} {v(p['error_after'], True):>10}")
    if len(r["points"]) == f["degree"] + 1:
        lines.append(f"  note: {len(r['points'])} references determine this fit exactly (no residual to "
                     f"check it by); one more reference would test it")
    return lines


# ---------------------------------------------------------------- the config it writes

def new_calibration(stages, fitted_stage):
    """The metric's stages with the transfer stages replaced by `fitted_stage`."""
    out, placed = [], False
    for st in stages or ():
        if isinstance(st, dict) and st.get("type") in TRANSFER_STAGES:
            if not placed:
                out.append(fitted_stage)
                placed = True
        else:
            out.append(st)
    if not placed:
        out.insert(0, fitted_stage)
    return out


def stage_text(stages):
    """A calibration chain in a line: "linear(gain 30020.2, offset -13.5137), round(decimals 1)"."""
    def val(x):
        return f"{x:.6g}" if isinstance(x, float) else json.dumps(x)
    return ", ".join(f"{st.get('type')}(" + ", ".join(f"{k} {val(x)}" for k, x in st.items() if k != "type") + ")"
                     for st in stages)


def _sig(x):
    return float(f"{float(x):.6g}")


def updated_config(cfg_text, metric, fit, references, raws, samples, stdevs, now=None):
    """The new /config.json text, checked by the firmware's own validator; raises EdgeshadowError
    naming what is wrong."""
    try:
        cfg = json.loads(cfg_text)
    except ValueError as e:
        raise EdgeshadowError(f"the board's /config.json is not valid JSON ({e}); fix it with `edgeshadow deploy`")
    if not isinstance(cfg, dict) or metric not in (cfg.get("metrics") or {}):
        raise EdgeshadowError(f"the board's /config.json has no metric {metric!r}")
    m = cfg["metrics"][metric]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    m["calibration"] = new_calibration(m.get("calibration"), fit.stage())
    # six significant digits: the shadow carries this (AWS's 8 KB), and the fit is not better
    m["provenance"] = {
        "date": now.isoformat(timespec="seconds"),
        "method": f"least squares {fit.kind}" + ("" if fit.kind == "linear" else f" degree {len(fit.coefficients) - 1}"),
        "tool": "edgeshadow calibrate",
        "references": [_sig(r) for r in references],
        "raw": [_sig(x) for x in raws],
        "raw_stdev": [_sig(x) for x in stdevs],
        "samples": samples,
        "residuals": [_sig(r) for r in fit.residuals],
        "residual_rms": _sig(fit.rms),
        "residual_max": _sig(fit.max_abs_residual),
    }
    # The firmware's validator, run on the host (issue 12 plans one entry point for it in
    # host_tools/device/board_check.py; until then, edge.config itself).
    config = _firmware("edge.config")
    try:
        config.load(cfg)
    except config.ConfigError as e:
        raise EdgeshadowError(f"the calibrated config would be invalid: {e}")
    return json.dumps(cfg, indent=1, sort_keys=True) + "\n", cfg


# ---------------------------------------------------------------- the wizard

def run_calibration(link, metric, references=None, samples=10, degree=1, ask=None, say=None,
                    dry_run=False, show=None, confirm=None, force=False, limits_data=None):
    """Run the wizard over one BoardLink and return the result dict (fit, checks, table, written).

    `ask(prompt) -> str` reads the person's answers (needed when `references` is None, or on a real
    board to wait while the person applies each value). `show(result)` presents the fit before
    anything is written; `confirm(result) -> bool` asks to write it (None: write without asking).
    A fit that fails its checks raises EdgeshadowError (exit 1) after it was shown; so does one
    beyond the bench tolerance unless `force`. The firmware is restarted afterwards, always."""
    check_request(references, degree, samples)
    if references is None and ask is None:
        raise EdgeshadowError("no --ref values and no way to ask for them (not interactive)", exit_code=EXIT_USAGE)
    say = say or (lambda msg: None)
    with BenchBoard(link, say) as board:
        info = _start(board, metric, ask, say)
        refs, raws, stdevs = collect_points(board, metric, references, samples, degree, ask, say)
        cfg_text = _read_config(link)
        result = evaluate(metric, info, refs, raws, stdevs, degree, samples, cfg_text, limits_data)
        (show or (lambda r: None))(result)
        _refuse_if_bad(result, force)
        if not dry_run:
            if confirm is not None:
                with Keepalive(board):
                    if not confirm(result):
                        raise EdgeshadowError("not written: the calibration was not confirmed", exit_code=EXIT_REFUSED)
            say("writing /config.json")
            link.write_file_atomic("/config.json", result["_config_text"].encode())
            result["written"] = True
    if board.restart_error is not None:
        raise EdgeshadowError(f"{'the calibration was written, but ' if result['written'] else ''}"
                              f"the firmware did not restart: {board.restart_error}", exit_code=EXIT_UNTESTED)
    result.pop("_config_text")
    return result


def _start(board, metric, ask, say):
    info = board.start(metric)
    if info["problems"]:
        raise EdgeshadowError(f"metric {metric}: {'; '.join(info['problems'])}")
    unit = info["units"][metric]
    say(f"calibrating {metric} ({unit or 'no unit'}) on board {info['board']}"
        f"{' (virtual: references applied by the simulation)' if info['virtual'] else ''}")
    if not info["virtual"] and ask is None:
        raise EdgeshadowError("on a real board a person applies each reference value: run "
                              "`edgeshadow calibrate` in a terminal, so it can wait for you", exit_code=EXIT_USAGE)
    return info


def _read_config(link):
    try:
        text = link.read_file("/config.json")
    except EdgeshadowError as e:
        raise EdgeshadowError(f"could not read the board's /config.json: {e}", exit_code=EXIT_UNTESTED)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _refuse_if_bad(result, force):
    if result["problems"]:
        raise EdgeshadowError("not written: " + "; ".join(result["problems"]), exit_code=EXIT_REFUSED)
    if not result["within_tolerance"]:
        f, u = result["fit"], result["unit"]
        msg = (f"the largest residual, {f['residual_max']:.4g} {u}, exceeds the bench tolerance of "
               f"{result['tolerance']:.4g} {u} (host_tools/data/bench_limits.json)")
        if not force:
            raise EdgeshadowError(f"not written: {msg}; check the references and the wiring, or "
                                  f"pass --force to write it anyway", exit_code=EXIT_REFUSED)
        result.setdefault("warnings", []).append(msg)
