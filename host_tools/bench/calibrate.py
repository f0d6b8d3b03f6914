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
import math
import statistics

from host_tools.bench.calibration import (EXIT_REFUSED, TRANSFER_STAGES, evaluate, fit_lines,  # noqa: F401
                                          new_calibration, problems, stage_text, tolerance, updated_config)
from host_tools.bench.session import BenchBoard
from host_tools.errors import EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError


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
