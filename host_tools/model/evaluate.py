"""How well the learned model finds in-range faults: generated streams (host_tools.model.streams), a
model trained per device on 14 normal days (host_tools.model.train), then one test day per device and
class (no fault, a legitimate load step, each fault kind), through the firmware's own pipeline.

    .venv/bin/python -m host_tools.model.evaluate --devices 12 --rrcf      (figures for the closing note)

Per class: detection rate (a model alert on the faulty metric after the fault began), median
delay, the diagnosis most shown while that alert was active (right or not), and false alarms per
device-day: model alerts raised outside a fault (on a load-step day: all of them), and raised
during a fault on another metric. The reference config's z-score rule (on current) is counted
beside it: its raises per device-day and the share of normal samples it holds flagged, and
with --rrcf a Random Cut Forest (the `rrcf` package) with ODFE-like settings on the same streams.
"""
import argparse
import json
import statistics
import sys
import time

from host_tools.model import streams as S
from host_tools.model import train as T
from host_tools.output import add_json_arg, emit
from host_tools.replay import firmware_modules
from host_tools.sim.reference import DATA

CONFIG = DATA / "configs" / "grid-sensor.json"
TRAIN_DAYS = 14
TEST_DAY = 30
# The OpenSearch/ODFE anomaly-detection defaults: 30 trees of 256 points, shingle size 8; the
# detector interval (10 min) aggregates the samples (mean per metric, each scaled by its training
# mean and deviation). The forest streams the last 3 training days; threshold: their scores' 99.5th
# percentile (the plugin learns its threshold online; the same idea, fixed). Each test day
# continues from a copy of that forest.
RCF = {"trees": 30, "tree_size": 256, "shingle": 8, "interval_s": 600, "quantile": 0.995, "warm_days": 3}


def base_config():
    data = json.loads(CONFIG.read_text())
    return data


def _run_device(cfg, records):
    """Raised alerts [(ts, metric, rule)] and, per model alert, the diagnoses shown while active."""
    firmware_modules()
    from edge.pipeline import Device
    dev = Device(cfg)
    raised = []
    shown = {"zscore active": []}
    for r in records:
        res = dev.process(r["ts"], r["raw"])
        for a in res["alerts"]:
            if a["rule"] == "zscore" and a["state"] != "cleared":
                shown["zscore active"].append(r["ts"])
        for e in res["events"]:
            if e["state"] == "raised":
                raised.append((r["ts"], e["metric"], e["rule"]))
        for d in res["diagnoses"]:
            if ":" in d["name"]:  # a model diagnosis, "<fault>:<metric>"
                shown[d["name"]] = shown.get(d["name"], 0) + 1
    return raised, shown


def evaluate(n_devices=12, seed=1, classes=None, rrcf=False, hours=None, progress=None,
             train_days=TRAIN_DAYS):
    """The evaluation's figures as a dict (see format_table)."""
    spec = S.load_spec()
    classes = classes or (["normal"] + list(spec["faults"]))
    cfg0 = base_config()
    rows = {c: {"streams": 0, "detected": 0, "delays": [], "diag_right": 0, "diagnoses": {},
                "false": 0, "days": 0.0, "z_false": 0, "z_detected": 0, "z_flagged": 0, "samples": 0} for c in classes}
    rcf_rows = {c: {"detected": 0, "delays": [], "false": 0, "days": 0.0} for c in classes} if rrcf else None
    sizes = []
    t0 = time.monotonic()
    for i in range(n_devices):
        thing = f"grid-sensor-{i + 1:03d}"
        dev = S.device(spec, thing, seed)
        nominal, _ = S.stream(spec, dev, 0, train_days)
        rules, _ = T.train_thing(dict(cfg0, thing=thing), nominal)
        cfg = T.with_model(cfg0, thing, rules)
        sizes.append(T.delta_size(cfg))
        forest = _rcf_train(nominal) if rrcf else None
        for k, cls in enumerate(classes):
            fault = None if cls == "normal" else cls
            days = 1 if hours is None else hours / 24
            recs, info = S.stream(spec, dev, TEST_DAY + k, days, fault=fault, seed=seed)
            raised, shown = _run_device(cfg, recs)
            row = rows[cls]
            row["streams"] += 1
            _score(row, info, raised, shown, recs)
            if rrcf:
                _rcf_score(rcf_rows[cls], forest, nominal, recs, info)
        if progress:
            progress.write(f"  {thing}: done ({time.monotonic() - t0:.0f} s)\n")
            progress.flush()
    return {"devices": n_devices, "seed": seed, "train_days": train_days, "rows": rows, "rcf": rcf_rows,
            "delta_bytes": max(sizes), "rcf_settings": RCF if rrcf else None}


def _score(row, info, raised, shown, recs):
    end_all = recs[-1]["ts"] + 10
    start_all = recs[0]["ts"]
    fault = info is not None and info["fault"]
    window = (info["start"], info["end"]) if fault else None
    model = [(ts, m) for ts, m, rule in raised if rule == "model"]
    z = [(ts, m) for ts, m, rule in raised if rule == "zscore"]
    hit = [ts for ts, m in model if window and window[0] <= ts < window[1] and m == info["signal"]]
    false = [ts for ts, m in model if not (window and window[0] <= ts < window[1] and m == info["signal"])]
    normal_s = (end_all - start_all) - ((window[1] - window[0]) if window else 0)
    row["days"] += normal_s / 86400
    row["false"] += len(false)
    if fault:
        if hit:
            row["detected"] += 1
            row["delays"].append(hit[0] - window[0])
            names = {k.split(":")[0]: n for k, n in shown.items() if k.endswith(":" + info["signal"])}
            best = max(names, key=names.get) if names else None
            row["diagnoses"][best] = row["diagnoses"].get(best, 0) + 1
            if best == info["kind"]:
                row["diag_right"] += 1
        if any(window[0] <= ts < window[1] for ts, m in z):
            row["z_detected"] += 1
    row["z_false"] += len([ts for ts, m in z if not (window and window[0] <= ts < window[1])])
    row["z_flagged"] += len([ts for ts in shown["zscore active"] if not (window and window[0] <= ts < window[1])])
    row["samples"] += len([r for r in recs if not (window and window[0] <= r["ts"] < window[1])])


def _shingles(records, start_ts=None):
    """(end ts, point) per detector interval: the mean of each metric, shingled."""
    import numpy as np
    iv, sh = RCF["interval_s"], RCF["shingle"]
    buckets = {}
    for r in records:
        b = r["ts"] // iv
        buckets.setdefault(b, []).append([r["raw"][m] for m in S.METRICS])
    keys = sorted(buckets)
    agg = [np.mean(np.array(buckets[b]), axis=0) for b in keys]
    out = []
    for j in range(sh - 1, len(agg)):
        out.append(((keys[j] + 1) * iv, np.concatenate(agg[j - sh + 1:j + 1])))
    return out


def _rcf_train(nominal):
    """A forest streamed through the last RCF["warm_days"] of the training days, and its threshold."""
    import numpy as np
    import rrcf
    pts = _shingles(nominal)
    mu = np.mean([p for _, p in pts], axis=0)
    sd = np.std([p for _, p in pts], axis=0) + 1e-9
    warm = [(p - mu) / sd for _, p in pts[-RCF["warm_days"] * 86400 // RCF["interval_s"]:]]
    np.random.seed(0)  # rrcf draws its cuts from numpy's global generator
    forest = {"mu": mu, "sd": sd, "trees": [rrcf.RCTree() for _ in range(RCF["trees"])], "n": 0}
    scores = _rcf_stream(forest, warm)
    forest["threshold"] = float(np.quantile(scores[64:], RCF["quantile"]))
    return forest


def _rcf_stream(forest, points):
    """CoDisp of each point streamed through the forest (each tree keeps the last tree_size points)."""
    scores = []
    for p in points:
        idx = forest["n"]
        forest["n"] += 1
        s = 0.0
        for t in forest["trees"]:
            if len(t.leaves) >= RCF["tree_size"]:
                t.forget_point(idx - RCF["tree_size"])
            t.insert_point(p, index=idx)
            s += t.codisp(idx)
        scores.append(s / len(forest["trees"]))
    return scores


def _rcf_score(row, forest, nominal, recs, info):
    import rrcf
    f = dict(forest, trees=[rrcf.RCTree.from_dict(t.to_dict()) for t in forest["trees"]])
    test = _shingles(recs)
    scores = _rcf_stream(f, [(p - f["mu"]) / f["sd"] for _, p in test])
    flagged = [test[j][0] for j, s in enumerate(scores) if s > f["threshold"]]
    fault = info is not None and info["fault"]
    window = (info["start"], info["end"]) if fault else None
    inside = [ts for ts in flagged if window and window[0] < ts <= window[1] + RCF["interval_s"]]
    # alarms: runs of flagged intervals outside the fault
    outside = sorted(ts for ts in flagged if ts not in inside)
    alarms = sum(1 for j, ts in enumerate(outside) if j == 0 or ts - outside[j - 1] > RCF["interval_s"])
    span = recs[-1]["ts"] + 10 - recs[0]["ts"]
    row["days"] += (span - ((window[1] - window[0]) if window else 0)) / 86400
    row["false"] += alarms
    if fault and inside:
        row["detected"] += 1
        row["delays"].append(inside[0] - window[0])
        # how long the forest keeps flagging a persistent fault: the share of fault intervals flagged
    if fault:
        n_in = max(1, (window[1] - window[0]) // RCF["interval_s"])
        row.setdefault("flagged_share", []).append(len(inside) / n_in)


def _median_min(delays):
    return statistics.median(delays) / 60 if delays else None


def format_table(res):
    out = []
    rows = res["rows"]
    out.append(f"{res['devices']} devices (seed {res['seed']}), trained on {res['train_days']} normal days each, "
               f"one test day per class; model rules as a shadow delta: at most {res['delta_bytes']} bytes")
    out.append(f"{'class':22} {'detected':>9} {'median delay':>13} {'diagnosis right':>16} "
               f"{'false/dev-day':>14}   {'z-score det.':>12} {'z raised/dev-day':>17} {'z flagged':>10}")
    for cls, r in rows.items():
        fault = r["delays"] or r["detected"] or cls not in ("normal", "load_step")
        det = f"{r['detected']}/{r['streams']}" if fault else "-"
        md = _median_min(r["delays"])
        delay = f"{md:.1f} min" if md is not None else "-"
        diag = f"{r['diag_right']}/{r['detected']}" if fault and r["detected"] else "-"
        fpd = r["false"] / r["days"] if r["days"] else 0.0
        zd = f"{r['z_detected']}/{r['streams']}" if fault else "-"
        zf = r["z_false"] / r["days"] if r["days"] else 0.0
        zs = 100 * r["z_flagged"] / r["samples"] if r["samples"] else 0.0
        out.append(f"{cls:22} {det:>9} {delay:>13} {diag:>16} {fpd:>14.3f}   {zd:>12} {zf:>17.1f} {zs:>9.0f}%")
    days = sum(r["days"] for r in rows.values())
    false = sum(r["false"] for r in rows.values())
    out.append(f"{'all':22} {'':>9} {'':>13} {'':>16} {false / days:>14.3f}   "
               f"({false} false alarms in {days:.1f} device-days of normal operation)")
    if res.get("rcf"):
        s = res["rcf_settings"]
        out.append("")
        out.append(f"RCF baseline (rrcf, {s['trees']} trees of {s['tree_size']} points, shingle {s['shingle']}, "
                   f"{s['interval_s'] // 60}-min detector interval, threshold: {s['quantile']} quantile of training scores)")
        out.append(f"{'class':22} {'detected':>9} {'median delay':>13} {'false/dev-day':>14} "
                   f"{'fault time flagged':>19}")
        for cls, r in res["rcf"].items():
            fault = cls not in ("normal", "load_step")
            n = rows[cls]["streams"]
            md = _median_min(r["delays"])
            share = r.get("flagged_share")
            out.append(f"{cls:22} {(str(r['detected']) + '/' + str(n)) if fault else '-':>9} "
                       f"{(f'{md:.1f} min' if md is not None else '-'):>13} "
                       f"{(r['false'] / r['days'] if r['days'] else 0):>14.3f} "
                       f"{(f'{100 * sum(share) / len(share):.0f} %' if share else '-'):>19}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools.model.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--train-days", type=int, default=TRAIN_DAYS)
    p.add_argument("--rrcf", action="store_true", help="also run the RCF baseline (slow)")
    add_json_arg(p, "the scores")
    args = p.parse_args(argv)
    res = evaluate(args.devices, args.seed, rrcf=args.rrcf, progress=sys.stderr, train_days=args.train_days)
    emit(args, json.loads(json.dumps(res, default=float)), lambda: print(format_table(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
