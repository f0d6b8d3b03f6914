"""Bench test: read every configured metric N times through the firmware's own drivers and
calibration, then judge each against the board's and the SKU's limits (host_tools/data/bench_limits.json).

The board side is a few lines of MicroPython exec'd over one BoardLink: it builds the firmware's
Board and Device from /board.json and /config.json and returns raw values, statuses, calibrated
values and read times as JSON, a chunk at a time (so the host can show progress). The firmware's
main loop is stopped first (Ctrl-C) and the board is soft-reset afterwards, whatever happens.
"""
import datetime
import json
import math
import statistics
import time

from host_tools import DATA_DIR
from host_tools.errors import EdgeshadowError

LIMITS_FILE = DATA_DIR / "bench_limits.json"
EXIT_PASS, EXIT_FAIL, EXIT_UNTESTED = 0, 1, 3
LIMIT_KEYS = {"min", "max", "noise_max", "noise_max_pct", "raw_noise_max", "stuck_stdev_max",
              "max_failed", "max_failed_pct", "note"}

# Exec'd once on the board: firmware objects in the REPL's globals, prefixed to stay out of the way.
BOARD_SETUP = """
import json as _bj, time as _bt, gc as _bg
import board as _bb
from edge import pipeline as _bp
_bcfg = _bj.load(open('/config.json'))
_bdef = _bj.load(open('/board.json'))
_bdev = _bp.Device(_bcfg)
_bboard = _bb.Board(_bdef, _bdev.cfg)
_bms = _bdev.metrics
_bwdt = None
if _bdev.cfg.get('watchdog_s') and 'app' in __import__('sys').modules:
    # the firmware ran, so its watchdog runs and cannot be stopped: keep feeding it
    try:
        import machine as _bmach
        _bwdt = _bmach.WDT(timeout=int(_bdev.cfg['watchdog_s'] * 1000))
    except Exception:
        _bwdt = None
def _bfeed():
    if _bwdt is not None:
        _bwdt.feed()
def _bench(n, interval_ms):
    out = []
    for i in range(n):
        _bfeed()
        if interval_ms and i:
            _bt.sleep_ms(interval_ms)
        t0 = _bt.ticks_us()
        raw, st = _bboard.read_all()
        dt = _bt.ticks_diff(_bt.ticks_us(), t0)
        out.append([dt, [raw.get(m) for m in _bms], [st.get(m, 'ok' if raw.get(m) is not None else 'no_data') for m in _bms],
                    [_bdev.calibrate(m, raw.get(m)) for m in _bms]])
    print(_bj.dumps(out))
_bg.collect()
print(_bj.dumps({'metrics': list(_bms), 'thing': _bdev.thing, 'board': _bdef.get('name'),
                 'sku': _bdev.cfg.get('sku'), 'units': dict((m, _bdev.cfg['metrics'][m].get('unit', '')) for m in _bms)}))
"""


def last_json_line(out, what):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise EdgeshadowError(f"the board's answer to {what} is not JSON: {out.strip()[-300:]!r}",
                          exit_code=EXIT_UNTESTED)


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


def analyse(info, rows, limits_data=None, sensors=None):
    """The report from the board's info and rows ([read_us, raws, statuses, calibrated] each)."""
    metrics = info["metrics"]
    units = info.get("units") or {}
    sensors = sensors or {}
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
                         driver=(sensors.get(m) or {}).get("driver"), data=limits_data)
        report["metrics"][m] = judge(m, raw, status, cal, lim, unit=units.get(m, ""))
        report["series"][m] = {"raw": raw, "calibrated": cal, "status": status}
    report["result"] = "PASS" if report["metrics"] and all(
        r["result"] == "PASS" for r in report["metrics"].values()) else "FAIL"
    return report


# ---------------------------------------------------------------- running on a board

def run_bench(link, samples=20, interval_s=0.0, chunk_s=4.0, progress=None, limits_data=None):
    """Stop the firmware, sample on the board, restart the firmware (always); return the report.

    `link` is a host_tools.device.link.BoardLink (exec, interrupt, soft_reset). Problems reaching or
    reading the board raise EdgeshadowError with exit code 3 (could not test)."""
    if samples < 1:
        raise EdgeshadowError("--samples must be at least 1")
    if interval_s < 0:
        raise EdgeshadowError("--interval must be >= 0")
    progress = progress or (lambda msg: None)
    rows = []
    per_read_s = 1.0
    restarted = None
    done = False
    try:
        progress("stopping the firmware's main loop")
        link.interrupt()
        out = _exec(link, BOARD_SETUP, "the bench set-up")
        info = last_json_line(out, "the bench set-up")
        sensors = _exec_json(link, "print(_bj.dumps(dict((m, _bcfg['metrics'][m].get('sensor') or "
                                   "_bdef.get('sensors', {}).get(m) or {}) for m in _bms)))", "the sensor list")
        progress(f"{info.get('thing')}: {len(info['metrics'])} metric(s): {', '.join(info['metrics'])}")
        t0 = time.monotonic()
        k = min(3, samples)  # a first short chunk measures the read time; then ~chunk_s per chunk
        while len(rows) < samples:
            k = min(k, samples - len(rows))
            if rows and interval_s:
                link.exec("_bfeed()")
                time.sleep(interval_s)  # the pause between chunks (inside a chunk the board sleeps)
            c0 = time.monotonic()
            got = _exec_json(link, f"_bench({k}, {int(interval_s * 1000)})", "a bench read",
                             timeout=10 + 3 * k * (per_read_s + interval_s))
            per_read_s = max(0.01, (time.monotonic() - c0) / k - interval_s)
            rows.extend(got)
            progress(f"read {len(rows)}/{samples} ({time.monotonic() - t0:.1f} s)")
            k = max(1, int(chunk_s / (per_read_s + interval_s)))
        done = True
    finally:
        progress("restarting the firmware")
        try:
            restarted = link.soft_reset()
        except EdgeshadowError as e:
            if not done:
                pass  # the error that stopped the bench is the one to report
            restarted = e
    report = analyse(info, rows, limits_data=limits_data, sensors=sensors)
    if isinstance(restarted, Exception):
        report["restart"] = f"failed: {restarted}"
    else:
        report["restart"] = "ok"
        report["boot_banner"] = (restarted or "").strip().splitlines()[-1:] or None
    return report


def _exec(link, code, what, timeout=10):
    try:
        return link.exec(code, timeout=timeout)
    except EdgeshadowError as e:
        raise EdgeshadowError(f"could not run {what} on the board: {e}", exit_code=EXIT_UNTESTED)


def _exec_json(link, code, what, timeout=10):
    return last_json_line(_exec(link, code, what, timeout), what)


# ---------------------------------------------------------------- output

def write_json(report, path):
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


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


def plot(report, path):
    """One panel per metric: calibrated series (and raw on a second axis), failed reads marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = list(report["metrics"])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 2.4 * len(metrics) + 0.6), squeeze=False,
                             sharex=True)
    for ax, m in zip(axes[:, 0], metrics):
        r, s = report["metrics"][m], report["series"][m]
        xs = list(range(len(s["status"])))
        cal = [math.nan if v is None else v for v in s["calibrated"]]
        raw = [math.nan if v is None else v for v in s["raw"]]
        color = "tab:green" if r["result"] == "PASS" else "tab:red"
        ax.plot(xs, cal, marker=".", color=color, label="calibrated")
        ax2 = ax.twinx()
        ax2.plot(xs, raw, color="tab:gray", alpha=0.5, linewidth=0.8, label="raw")
        ax2.set_ylabel("raw", color="tab:gray", fontsize=8)
        bad = [x for x, st in zip(xs, s["status"]) if st != "ok"]
        for i, x in enumerate(bad):
            ax.axvline(x, color="tab:red", alpha=0.3, label=None if i else f"failed read ({len(bad)})")
        lim = r["limits"]
        good = [v for v in cal if not math.isnan(v)]
        c = r["calibrated"]
        if good:
            # scaled to the data (the noise shows), with the noise limit as a band around the mean
            # and the expected range's edges where they fall in view
            noise = _noise_limit(lim, c["mean"])
            lo, hi = min(good), max(good)
            pad = max((hi - lo) * 0.2, noise or 0.0, abs(c["mean"]) * 1e-3, 1e-6)
            ax.set_ylim(lo - pad, hi + pad)
            if noise:
                ax.axhspan(c["mean"] - noise, c["mean"] + noise, color="tab:blue", alpha=0.08,
                           label="mean \u00b1 noise limit")
            for key in ("min", "max"):
                if lim.get(key) is not None and lo - pad <= lim[key] <= hi + pad:
                    ax.axhline(lim[key], color="tab:orange", linestyle="--", linewidth=0.8,
                               label=f"expected {key}")
            ax.legend(loc="upper right", fontsize=7)
        title = f"{m} [{r['unit']}] {r['result']}"
        if r["reasons"]:
            title += ": " + "; ".join(r["reasons"])[:110]
        ax.set_title(title, fontsize=9, color=color, loc="left")
        ax.set_ylabel(r["unit"] or m)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("sample")
    fig.suptitle(f"bench {report.get('thing')} ({report.get('board')}): {report['result']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
