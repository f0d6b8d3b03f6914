"""What a calibration is, apart from the board: the fit's checks, the error before and after at
every reference, and the config it writes (checked by the firmware's own validator). The wizard
that gathers the points is host_tools.bench.calibrate.
"""
import datetime
import json
import math
import sys

from host_tools import FIRMWARE_DIR
from host_tools.bench import check
from host_tools.errors import EXIT_FAILED, EdgeshadowError

TRANSFER_STAGES = ("linear", "two_point", "polynomial", "table", "offset", "multiply", "kelvin_to_celsius")
EXIT_REFUSED = EXIT_FAILED


def _firmware(module):
    """A firmware module on CPython (the board's own validator and calibration stages)."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    import importlib
    return importlib.import_module(module)


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
