"""Bench test: read every configured metric N times through the firmware's own drivers and
calibration, then judge each against the board's and the SKU's limits (host_tools/data/bench_limits.json).

The board side is the firmware's bench module (firmware/benchside.py, called through
host_tools.bench.session): it builds the firmware's Board and calibration chains from /board.json
and /config.json and returns raw values, statuses, calibrated values and read times, a chunk at a
time (so the host can show progress). The firmware's main loop is stopped first (Ctrl-C) and the
board is soft-reset afterwards, whatever happens. On the virtual board the simulation's anomaly
generator is paused meanwhile (a board on the bench sees a quiet line; its faults stay).
"""
import datetime
import json
import math
import statistics
import time

from host_tools import DATA_DIR
from host_tools.bench.session import BenchBoard
from host_tools.errors import EXIT_FAILED, EXIT_OK, EdgeshadowError

LIMITS_FILE = DATA_DIR / "bench_limits.json"
EXIT_PASS, EXIT_FAIL = EXIT_OK, EXIT_FAILED
LIMIT_KEYS = {"min", "max", "noise_max", "noise_max_pct", "raw_noise_max", "stuck_stdev_max",
              "max_failed", "max_failed_pct", "residual_max", "residual_max_pct", "note"}


# ---------------------------------------------------------------- limits (data)

def load_limits(path=LIMITS_FILE):
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise EdgeshadowError(f"cannot read bench limits {path}: {e.strerror}")
    except ValueError as e:
        raise EdgeshadowError(f"{path}: not valid JSON ({e})")
    problems = []
    for section in ("defaults", "boards", "skus", "drivers"):
        sec = data.get(section, {})
        entries = {"": sec} if section == "defaults" else sec
        for name, metrics in entries.items():
            for m, lim in metrics.items():
                where = f"{section}{'.' + name if name else ''}.{m}"
                if not isinstance(lim, dict):
                    problems.append(f"{where}: must be an object of limits")
                    continue
                for k, v in lim.items():
                    if k not in LIMIT_KEYS:
                        problems.append(f"{where}.{k}: unknown limit (known: {', '.join(sorted(LIMIT_KEYS))})")
                    elif k != "note" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                        problems.append(f"{where}.{k}: must be a number")
    if problems:
        raise EdgeshadowError(f"{path}: " + "; ".join(problems))
    return data


def limits_for(metric, board=None, sku=None, driver=None, data=None):
    """The limits of one metric: defaults, then the SKU's entry (what the product should read),
    the driver's and the board's (what the hardware resolves). A SKU's `ratings` (from the device
    config) cap the expected range of a rated metric."""
    data = load_limits() if data is None else data
    sku = sku or {}
    lim = dict(data.get("defaults", {}).get(metric, {}))
    lim.update(data.get("skus", {}).get(sku.get("name") or "", {}).get(metric, {}))
    lim.update(data.get("drivers", {}).get(driver or "", {}).get(metric, {}))
    lim.update(data.get("boards", {}).get(board or "", {}).get(metric, {}))
    rating = (sku.get("ratings") or {}).get(metric)
    if isinstance(rating, (int, float)) and "max" not in lim:
        lim["max"] = rating
    lim.pop("note", None)
    return lim


# ---------------------------------------------------------------- statistics and verdicts

def _stats(xs):
    if not xs:
        return {"n": 0, "mean": None, "min": None, "max": None, "stdev": None, "noise": None}
    return {"n": len(xs), "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0, "noise": _noise(xs)}


def _noise(xs):
    """The noise with the trend taken out: from second differences, sqrt(mean(d2^2) / 6) with
    d2 = x[i+1] - 2 x[i] + x[i-1] (first differences, sqrt(mean(d1^2) / 2), for two readings).
    For white noise it equals the plain stdev; a steady drift (a room warming up, the line's
    daily swing) cancels out, where it would inflate the plain stdev and fail a good sensor."""
    if len(xs) < 2:
        return 0.0
    if len(xs) == 2:
        return abs(xs[1] - xs[0]) / math.sqrt(2)
    return math.sqrt(statistics.fmean((c - 2 * b + a) ** 2 for a, b, c in zip(xs, xs[1:], xs[2:])) / 6)


def _fmt(x, unit=""):
    text = f"{x:.4g}"
    if "e" in text and abs(x) >= 1:  # 24000, not 2.4e+04
        text = f"{x:.0f}"
    return f"{text}{' ' + unit if unit else ''}"


def _noise_limit(limits, mean):
    """The noise allowed: noise_max, or noise_max_pct of the mean, whichever is smaller."""
    noise_max = limits.get("noise_max")
    if "noise_max_pct" in limits and mean:
        pct = abs(mean) * limits["noise_max_pct"] / 100.0
        noise_max = pct if noise_max is None else min(noise_max, pct)
    return noise_max


def judge(metric, raw, status, cal, limits, unit=""):
    """One metric's result: statistics plus PASS/FAIL with the reasons (each a sentence)."""
    n = len(status)
    failed = {}
    for s in status:
        if s != "ok":
            failed[s] = failed.get(s, 0) + 1
    raw_ok = [x for x, s in zip(raw, status) if s == "ok" and x is not None]
    cal_ok = [x for x, s in zip(cal, status) if s == "ok" and x is not None]
    rs, cs = _stats(raw_ok), _stats(cal_ok)
    reasons = []
    n_failed = sum(failed.values())
    allowed = max(limits.get("max_failed", 0), int(n * limits.get("max_failed_pct", 0) / 100.0))
    if n_failed > allowed:
        what = ", ".join(f"{k} x{v}" for k, v in sorted(failed.items()))
        if failed.get("disconnected"):
            reasons.append(f"disconnected: {n_failed} of {n} reads failed ({what})")
        else:
            reasons.append(f"failed reads: {n_failed} of {n} ({what})")
    if not cal_ok:
        if not reasons:
            reasons.append("no value: calibration dropped every reading")
    else:
        stuck_max = limits.get("stuck_stdev_max", 0.0)
        if len(raw_ok) >= 3 and rs["stdev"] <= stuck_max:
            reasons.append(f"stuck: {len(raw_ok)} raw readings vary by stdev {rs['stdev']:.3g} "
                           f"(a live sensor varies by more than {stuck_max:.3g})")
        lo, hi = limits.get("min"), limits.get("max")
        if (lo is not None and cs["mean"] < lo) or (hi is not None and cs["mean"] > hi):
            rng = f"{_fmt(lo) if lo is not None else '-inf'}..{_fmt(hi) if hi is not None else 'inf'}"
            reasons.append(f"out of range: mean {_fmt(cs['mean'], unit)} outside expected {rng}"
                           f"{' ' + unit if unit else ''}")
        noise_max = _noise_limit(limits, cs["mean"])
        if noise_max is not None and cs["noise"] > noise_max:
            reasons.append(f"noisy: noise {_fmt(cs['noise'], unit)} above the limit {_fmt(noise_max, unit)}")
        if "raw_noise_max" in limits and rs["noise"] > limits["raw_noise_max"]:
            reasons.append(f"noisy: raw noise {rs['noise']:.4g} above the limit {limits['raw_noise_max']:.4g}")
    return {"result": "FAIL" if reasons else "PASS", "reasons": reasons, "unit": unit,
            "samples": n, "failed": failed, "raw": rs, "calibrated": cs, "limits": limits}


def analyse(info, rows, limits_data=None):
    """The report from the board's info and rows ([read_us, raws, statuses, calibrated] each)."""
    metrics = info["metrics"]
    units = info.get("units") or {}
    drivers = info.get("drivers") or {}
    read_us = [r[0] for r in rows]
    report = {"thing": info.get("thing"), "board": info.get("board"), "sku": info.get("sku"),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "samples": len(rows),
              "read_time_ms": {"mean": statistics.fmean(read_us) / 1000 if read_us else None,
                               "max": max(read_us) / 1000 if read_us else None},
              "metrics": {}, "series": {"read_us": read_us}}
    for i, m in enumerate(metrics):
        raw = [r[1][i] for r in rows]
        status = [r[2][i] for r in rows]
        cal = [r[3][i] for r in rows]
        lim = limits_for(m, board=info.get("board"), sku=info.get("sku"),
                         driver=drivers.get(m), data=limits_data)
        report["metrics"][m] = judge(m, raw, status, cal, lim, unit=units.get(m, ""))
        report["series"][m] = {"raw": raw, "calibrated": cal, "status": status}
    report["result"] = "PASS" if report["metrics"] and all(
        r["result"] == "PASS" for r in report["metrics"].values()) else "FAIL"
    return report


# ---------------------------------------------------------------- running on a board

def run_bench(link, samples=20, interval_s=0.0, chunk_s=4.0, say=None, on_reads=None, limits_data=None):
    """Stop the firmware, sample on the board, restart the firmware (always); return the report.

    `link` is a host_tools.device.link.BoardLink. `say(msg)` gets progress sentences, `on_reads(k)`
    each chunk's count. Problems reaching or reading the board raise EdgeshadowError with exit
    code 3 (could not test); a failed restart is in report["restart"]."""
    if samples < 1:
        raise EdgeshadowError("--samples must be at least 1")
    if interval_s < 0:
        raise EdgeshadowError("--interval must be >= 0")
    say = say or (lambda msg: None)
    rows = []
    with BenchBoard(link, say) as board:
        info = board.start()
        say(f"{info.get('thing')}: {len(info['metrics'])} metric(s): {', '.join(info['metrics'])}")
        if info.get("problems"):
            say("the board layer reports: " + "; ".join(info["problems"]))
        _sample(board, rows, samples, interval_s, chunk_s, on_reads or (lambda k: None))
    report = analyse(info, rows, limits_data=limits_data)
    if board.restart_error is not None:
        report["restart"] = f"failed: {board.restart_error}"
    else:
        report["restart"] = "ok"
        report["boot_banner"] = board.banner.strip().splitlines()[-1:] or None
    return report


def _sample(board, rows, samples, interval_s, chunk_s, on_reads):
    """Read in chunks of about chunk_s (a first short one measures the read time)."""
    per_read_s = 1.0
    k = min(3, samples)
    while len(rows) < samples:
        k = min(k, samples - len(rows))
        if rows and interval_s:
            board.feed()
            time.sleep(interval_s)  # the pause between chunks (inside a chunk the board sleeps)
        c0 = time.monotonic()
        got = board.read(k, interval_s * 1000, timeout=10 + 3 * k * (per_read_s + interval_s))
        per_read_s = max(0.01, (time.monotonic() - c0) / k - interval_s)
        rows.extend(got)
        on_reads(len(got))
        k = max(1, int(chunk_s / (per_read_s + interval_s)))


# ---------------------------------------------------------------- output

def summary_lines(report):
    lines = [f"bench {report.get('thing')} (board {report.get('board')}, "
             f"sku {(report.get('sku') or {}).get('name', '-')}): {report['samples']} samples, "
             f"read time mean {report['read_time_ms']['mean']:.1f} ms, max {report['read_time_ms']['max']:.1f} ms"]
    for m, r in report["metrics"].items():
        c, w, u = r["calibrated"], r["raw"], r["unit"]
        if c["n"]:
            vals = (f"cal mean {_fmt(c['mean'], u)} [{_fmt(c['min'])}..{_fmt(c['max'])}] sd {_fmt(c['stdev'])} "
                    f"noise {_fmt(c['noise'])}; raw mean {_fmt(w['mean'])} noise {_fmt(w['noise'])}")
        else:
            vals = "no values"
        failed = f"; failed {sum(r['failed'].values())}/{r['samples']}" if r["failed"] else ""
        lines.append(f"  {r['result']}  {m:<14} {vals}{failed}")
        lines.extend(f"        - {why}" for why in r["reasons"])
    lines.append(f"overall: {report['result']}")
    return lines
