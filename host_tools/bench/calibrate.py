"""Calibration wizard: apply known reference values, sample the raw reading at each, fit by least
squares on the host (host_tools.bench.fit), and write the fitted stage with its provenance into the
board's /config.json, atomically. The device only evaluates the coefficients.

The fit replaces the metric's transfer stages (linear, two_point, polynomial, table, offset,
multiply, kelvin_to_celsius) by one fitted stage at the place of the first of them; filters
(clamp, round, ema, mean, median, filter_out) stay where they are. Provenance goes to
metrics.<m>.provenance: date, method, reference and raw values, residuals, samples.

On the virtual board the reference is applied through the simulation (`sim_reference_code`); on a
real board the person applies it (the wizard waits for Enter).
"""
import datetime
import json
import statistics
import sys

from host_tools import FIRMWARE_DIR
from host_tools.bench import fit as fitlib
from host_tools.bench.check import EXIT_UNTESTED, last_json_line
from host_tools.errors import EdgeshadowError

TRANSFER_STAGES = ("linear", "two_point", "polynomial", "table", "offset", "multiply", "kelvin_to_celsius")

# Exec'd once on the board: a Board holding only the metric's sensor, so a read is one sensor.
CAL_SETUP = """
import json as _cj
import board as _cb
_ccfg = _cj.load(open('/config.json'))
_cdef = _cj.load(open('/board.json'))
_cm = %(metric)r
if _cm not in _ccfg.get('metrics', {}):
    print(_cj.dumps({'error': 'no metric %%r in /config.json (it has: %%s)' %% (_cm, ', '.join(sorted(_ccfg.get('metrics', {}))))}))
else:
    _cboard = _cb.Board(_cdef, {'metrics': {_cm: _ccfg['metrics'][_cm]}})
    _cwdt = None
    if _ccfg.get('watchdog_s', 45) and 'app' in __import__('sys').modules:
        # the firmware ran, so its watchdog runs and cannot be stopped: keep feeding it
        try:
            import machine as _cmach
            _cwdt = _cmach.WDT(timeout=int(_ccfg.get('watchdog_s', 45) * 1000))
        except Exception:
            _cwdt = None
    def _cfeed():
        if _cwdt is not None:
            _cwdt.feed()
        print('{}')
    def _cal_read(n):
        out = []
        for i in range(n):
            if _cwdt is not None:
                _cwdt.feed()
            raw, st = _cboard.read_all()
            out.append([raw.get(_cm), st.get(_cm)])
        print(_cj.dumps(out))
    print(_cj.dumps({'board': _cdef.get('name'), 'virtual': bool(_cdef.get('virtual')),
                     'unit': _ccfg['metrics'][_cm].get('unit', ''), 'problems': _cboard.problems,
                     'calibration': _ccfg['metrics'][_cm].get('calibration', [])}))
"""


def _edge_config():
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    from edge import config
    return config


def _exec_json(link, code, what, timeout=10):
    try:
        out = link.exec(code, timeout=timeout)
    except EdgeshadowError as e:
        raise EdgeshadowError(f"could not run {what} on the board: {e}", exit_code=EXIT_UNTESTED)
    return last_json_line(out, what)


# Exec'd on the virtual board: hold the simulated physical signal behind the metric at a value.
# simhw replays a timeline of signals (host_tools/sim/mpy/simhw.py); a one-value timeline is a
# constant: simhw.set_signal holds it.
SIM_REFERENCE = """
import simhw as _sh
_sig = %(signal)r
_sh.set_signal(_sig, %(value)r)
print('{"signal": "%%s"}' %% _sig)
"""


def sim_reference_code(metric, value, signal=None):
    """MicroPython that sets the virtual board's simulated physical value of `metric` (its signal
    has the metric's name unless the sensor dict says otherwise)."""
    return SIM_REFERENCE % {"signal": signal or metric, "value": float(value)}


def sample_raw(link, n, max_attempts=None):
    """n good raw reads of the set-up metric, retrying failed reads up to `max_attempts` reads in
    all (default 3n): (median raw, [raws], {status: count} of the failures). The median keeps one
    odd read from moving the calibration point."""
    max_attempts = max_attempts or 3 * n
    raws, failed, tried = [], {}, 0
    while len(raws) < n and tried < max_attempts:
        k = min(n - len(raws), max_attempts - tried)
        rows = _exec_json(link, f"_cal_read({int(k)})", "a calibration read", timeout=10 + 5 * k)
        tried += k
        for raw, st in rows:
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


def _sig(x):
    return float(f"{float(x):.6g}")


def updated_config(cfg_text, metric, fit, references, raws, samples, stdevs, now=None):
    """The new /config.json text (validated); raises EdgeshadowError naming what is wrong."""
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
    config = _edge_config()
    try:
        config.load(cfg)
    except config.ConfigError as e:
        raise EdgeshadowError(f"the calibrated config would be invalid: {e}")
    return json.dumps(cfg, indent=1, sort_keys=True) + "\n", cfg


class _Keepalive:
    """While the person answers a prompt, feed the board's watchdog every few seconds (the
    firmware's watchdog keeps running after Ctrl-C and cannot be stopped)."""

    def __init__(self, link, every_s=5.0):
        import threading
        self.link, self.every_s = link, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.every_s):
            try:
                self.link.exec("_cfeed()")
            except EdgeshadowError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def run_calibration(link, metric, references=None, samples=10, degree=1, ask=None, progress=None,
                    dry_run=False, min_points=None):
    """Run the wizard over one BoardLink. `ask(prompt) -> str` reads the person's answers (needed
    when `references` is None, or on a real board to wait while the person applies each value).
    Returns a result dict (fit, residuals, config written). The firmware is restarted afterwards."""
    if samples < 1:
        raise EdgeshadowError("--samples must be at least 1")
    need = min_points or max(2, degree + 1)
    if references is not None and len(references) < need:
        raise EdgeshadowError(f"need at least {need} reference values for a degree-{degree} fit, "
                              f"got {len(references)}")
    if references is None and ask is None:
        raise EdgeshadowError("no --ref values and no way to ask for them (not interactive)")
    progress = progress or (lambda msg: None)
    refs, raws, stdevs = [], [], []
    result = None
    done = False
    try:
        progress("stopping the firmware's main loop")
        link.interrupt()
        info = _exec_json(link, CAL_SETUP % {"metric": metric}, "the calibration set-up")
        if "error" in info:
            raise EdgeshadowError(info["error"])
        if info["problems"]:
            raise EdgeshadowError(f"metric {metric}: {'; '.join(info['problems'])}")
        unit = info["unit"]
        virtual = info["virtual"]
        progress(f"calibrating {metric} ({unit or 'no unit'}) on board {info['board']}"
                 f"{' (virtual: references applied by the simulation)' if virtual else ''}")
        if not virtual and ask is None:
            raise EdgeshadowError("on a real board a person applies each reference value: run "
                                  "`edgeshadow calibrate` in a terminal, so it can wait for you")
        queue = list(references) if references is not None else None
        while True:
            if queue is not None:
                if not queue:
                    break
                ref = queue.pop(0)
                if not virtual and ask is not None:
                    with _Keepalive(link):
                        ask(f"apply {ref:g} {unit} to {metric}, then press Enter ")
            else:
                with _Keepalive(link):
                    answer = ask(f"reference {len(refs) + 1}: apply a known {metric}, type its value "
                                 f"in {unit or 'its unit'} and press Enter (empty to finish) ").strip()
                if not answer:
                    if len(refs) >= need:
                        break
                    progress(f"need at least {need} points, have {len(refs)}")
                    continue
                try:
                    ref = float(answer)
                except ValueError:
                    progress(f"not a number: {answer!r}")
                    continue
            if virtual:
                _exec_json(link, sim_reference_code(metric, ref), "setting the simulated reference")
            mean, xs, failed = sample_raw(link, samples)
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            refs.append(ref)
            raws.append(mean)
            stdevs.append(sd)
            retried = f", {sum(failed.values())} failed read(s) retried" if failed else ""
            progress(f"  reference {ref:g} {unit}: raw median {mean:.6g} (sd {sd:.3g}, {len(xs)} reads{retried})")
        fit = fitlib.fit_polynomial(list(zip(raws, refs)), degree)
        cfg_text = link.read_file("/config.json")
        if isinstance(cfg_text, bytes):
            cfg_text = cfg_text.decode()
        new_text, cfg = updated_config(cfg_text, metric, fit, refs, raws, samples, stdevs)
        result = {"metric": metric, "unit": unit, "fit": fit, "stage": fit.stage(),
                  "references": refs, "raw": raws, "residuals": fit.residuals,
                  "provenance": cfg["metrics"][metric]["provenance"],
                  "calibration": cfg["metrics"][metric]["calibration"], "written": False}
        if not dry_run:
            progress("writing /config.json")
            link.write_file_atomic("/config.json", new_text.encode())
            result["written"] = True
        done = True
    finally:
        progress("restarting the firmware")
        try:
            link.soft_reset()
        except EdgeshadowError:
            if done:  # otherwise the error that stopped the calibration is the one to report
                raise
    return result
