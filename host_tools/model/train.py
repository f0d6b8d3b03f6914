"""`edgeshadow train`: learn a device's normal behaviour from recorded normal operation and write
a config with `model` rules (firmware/edge/model.py evaluates them on the device).

Per modelled metric (MODELS): least squares of its value, in the integer steps the device uses,
on the device's own features (computed by the firmware's code, so host and device agree to the
bit): inputs' steps (squared for heating, low-passed with the conductor's thermal lag, the lag
picked from TAUS by the smallest residual), and the time of day. Then the residual's deviation
and the thresholds of the statistics the rule watches are set from running the rule itself over
the same recording, with margins (SHIFT_K, ROUGH_K, FROZEN_MIN).

    rules, report = train_thing(cfg, records)     # records: one thing's replay records, in order
"""
import json
import math
from pathlib import Path

from host_tools.errors import EdgeshadowError

# metric -> inputs [metric, power, tau ("fit": from TAUS)], the input whose effect the diagnosis
# watches (index), and what an amplified effect of that input means
MODELS = {
    "temperature": {"inputs": [["current", 2, "fit"], ["humidity", 1, 0]], "load": 0,
                    "excess": "hot_joint"},
    "voltage": {"inputs": [["current", 1, 0]], "load": 0, "excess": "excess_sag"},
}
TAUS = (300, 450, 600, 900, 1200, 1500, 1800, 2400, 3000, 3600)
SHIFT_K = 6.0      # shift threshold: this many deviations of the trained mean-of-z, ...
SHIFT_MARGIN = 2.0  # ... and at least this times the largest seen in training (days differ)
ROUGH_K = 4.0      # roughness threshold: this times its trained mean, and 1.5 x its trained max
FROZEN_MIN = 30    # a frozen reading: at least this many unchanged samples (5 min at 10 s)
MIN_SAMPLES = 2000
TAU_SEARCH_SAMPLES = 8640  # one day at 10 s picks the thermal lag
RULE_DEFAULTS = {"severity": "warning", "debounce": 3, "clear_after": 30}


def _edge():
    from host_tools.replay import firmware_modules
    firmware_modules()
    from edge import model
    return model


def _decimals(values):
    d = 0
    for v in values[:2000]:
        s = repr(float(v))
        if "e" in s:
            continue
        frac = s.split(".")[1].rstrip("0")
        d = max(d, len(frac))
    return min(d, 4)


def choose_scale(values):
    """Steps per unit for a metric: 1 when the sample-to-sample change is at least a unit, else
    10^decimals of the recording (a value then sits within float32's error of a whole step, far
    from a half-way point), fewer while value * scale would reach 1e5."""
    diffs = sorted(abs(b - a) for a, b in zip(values, values[1:]))
    if diffs and diffs[len(diffs) // 2] >= 1.0:
        return 1
    scale = 10 ** _decimals(values)
    peak = max(abs(v) for v in values)
    while scale > 1 and peak * scale >= 1e5:  # edge.model's half-way tolerance stays under 0.1 step
        scale //= 10
    return scale


def _run(model_mod, rule, records, collect, features_only=False):
    """Run one model rule over records the way the pipeline does; collect(m, t) after each check.
    features_only: the rule's statistics and decision are skipped (a features pass reads only the
    firmware's features and steps: a third less work)."""
    m = (_features_model(model_mod) if features_only else model_mod.Model)(rule, None)
    for r in records:
        m.see(r["raw"])
        v = r["raw"].get(rule["metric"])
        hit = m.check(v, r["ts"], False)
        if hit is not None:
            collect(m, r)
    return m


def _features_model(model_mod):
    """edge.model.Model without its statistics: check() computes the features and the sample's
    steps with the firmware's own code, then returns False (not None: past the warm-up)."""
    class Features(model_mod.Model):
        def _follow(self, z):
            pass

        def _decide(self, run):
            return False
    return Features


def _features(model_mod, rule, records):
    """Feature rows [1, f1.., sin, cos] and targets (steps) on the samples past the warm-up."""
    rows, ys = [], []
    k = len(rule["inputs"])

    def collect(m, r):
        row = [1.0] + [float(f) for f in m.feat]
        if rule["daily"]:
            tod = int(r["ts"]) % 86400
            row += [float(model_mod.day_sin(tod)), float(model_mod.day_sin((tod + 21600) % 86400))]
        rows.append(row)
        ys.append(float(m.x))
    probe = dict(rule, w=[0] * (1 + k + (2 if rule["daily"] else 0)), frac=0, sd=1,
                 shift=[1 << 40, 0], rough=[1 << 40, 0], frozen=0)
    probe.pop("load", None)
    _run(model_mod, probe, records, collect, features_only=True)
    return rows, ys


def _fit(rule, model_mod, records):
    import numpy as np
    rows, ys = _features(model_mod, rule, records)
    if len(rows) < MIN_SAMPLES:
        raise EdgeshadowError(f"{rule['metric']}: {len(rows)} usable samples after the warm-up; "
                              f"need at least {MIN_SAMPLES} (about 6 h at 10 s) of normal operation")
    x = np.array(rows)
    y = np.array(ys)
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)  # column scaling for a well-conditioned solve
    coef, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
    coef = coef / scale
    # the most fraction bits that keep the weighted sum under 2^29 (a small int on a 32-bit board)
    peak = float(np.max(np.abs(x * coef).sum(axis=1)))
    frac = max(0, min(28, int(math.floor(math.log2((1 << 29) / max(peak, 1.0))))))
    w = [int(round(c * (1 << frac))) for c in coef]
    resid = y - x @ coef
    return w, frac, float(np.sqrt(np.mean(resid ** 2))), len(rows)


def _pick_lag(model_mod, spec, target, scales, records):
    """(rule without weights, tau): the thermal lag of TAUS whose fit on the first day leaves the
    smallest residual (0 when no input is low-passed)."""
    fit_taus = list(TAUS) if any(i[2] == "fit" for i in spec["inputs"]) else [0]
    search = records[:TAU_SEARCH_SAMPLES] if len(fit_taus) > 1 else []
    best = None
    for tau in fit_taus:  # the lag on the first days, then the weights on everything
        inputs = [[m, scales[m], p, tau if t == "fit" else t] for m, p, t in spec["inputs"]]
        rule = {"metric": target, "type": "model", "scale": scales[target], "inputs": inputs, "daily": True}
        rms = _fit(rule, model_mod, search)[2] if search else 0.0
        if best is None or rms < best[1]:
            best = (rule, rms, tau)
    return best[0], best[2]


def train_metric(cfg, records, target):
    """One model rule for `target`, and a report dict."""
    model_mod = _edge()
    spec = MODELS[target]
    scales = {}
    for m in [target] + [i[0] for i in spec["inputs"]]:
        vals = [r["raw"][m] for r in records if r["raw"].get(m) is not None]
        if len(vals) < MIN_SAMPLES:
            raise EdgeshadowError(f"{m}: {len(vals)} readings; need at least {MIN_SAMPLES} of normal operation")
        scales[m] = choose_scale(vals)
    rule, tau = _pick_lag(model_mod, spec, target, scales, records)
    w, frac, rms, n = _fit(rule, model_mod, records)
    rule["w"] = w
    rule["frac"] = frac
    sd = max(1, int(round(rms)))
    rule["sd"] = sd
    rule["load"] = [spec["load"], 0]
    rule["excess"] = spec["excess"]
    # the load term's mean contribution and the statistics' spread, from the rule itself
    j = spec["load"]
    contrib, ms, roughs, runs = [], [], [], [0]

    def collect(m, r):
        contrib.append(m.w[j + 1] * m.feat[j] >> frac)
        ms.append(m.m >> 5)
        roughs.append(m.r >> 5)
        runs.append(m.run)
    _run(model_mod, dict(rule, shift=[1 << 40, 0], rough=[1 << 40, 0], frozen=0), records, collect)
    rule["load"][1] = int(round(sum(contrib) / len(contrib)))
    ms, roughs = ms[64:], roughs[64:]  # past the statistics' own start-up
    sm = math.sqrt(sum(v * v for v in ms) / len(ms))
    shift_on = max(int(SHIFT_K * sm), int(SHIFT_MARGIN * max(abs(v) for v in ms)), 256)
    rmean = sum(roughs) / len(roughs)
    rough_on = max(int(ROUGH_K * rmean), int(1.5 * max(roughs)), 256)
    rule["shift"] = [shift_on, shift_on // 2]
    rule["rough"] = [rough_on, rough_on // 2]
    rule["frozen"] = max(FROZEN_MIN, 3 * max(runs))
    out = dict({"metric": target, "type": "model"}, **RULE_DEFAULTS)
    out.update(rule)
    report = {"metric": target, "samples": n, "tau_s": tau, "rms": rms / scales[target],
              "sd_steps": sd, "scale": scales[target], "shift_sd": shift_on / 256,
              "rough": rough_on, "frozen": rule["frozen"]}
    return out, report


def calibrated(cfg, records):
    """The records with their raw readings through the config's calibration, as the device sees them."""
    _edge()
    from edge.pipeline import Device
    dev = Device(dict(cfg, rules=[], thing=cfg.get("thing") or "train"))
    return [{"ts": r["ts"], "raw": {m: dev.calibrate(m, v) for m, v in r["raw"].items()}} for r in records]


def train_thing(cfg, records):
    """(model rules, reports) for one thing's records (time order), for each modelled metric the
    config has (with its inputs)."""
    metrics = cfg["metrics"]
    records = calibrated(cfg, records)
    rules, reports = [], []
    for target, spec in MODELS.items():
        if target in metrics and all(i[0] in metrics for i in spec["inputs"]):
            rule, rep = train_metric(cfg, records, target)
            rules.append(rule)
            reports.append(rep)
    if not rules:
        raise EdgeshadowError("the config has none of the modelled metrics with their inputs "
                              f"({', '.join(f'{k} from ' + ', '.join(i[0] for i in v['inputs']) for k, v in MODELS.items())})")
    return rules, reports


def read_records(path, cfg):
    """Replay-format records grouped by thing, checked like `edgeshadow replay` checks them."""
    from host_tools.replay import firmware_modules, text_lines
    _, ereplay = firmware_modules()
    metrics = sorted(cfg["metrics"])
    by_thing, last_ts = {}, {}
    text_lines(path)  # readable UTF-8 text, or an error naming the file and line
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise EdgeshadowError(f"{path} line {n}: not valid JSON")
            problems = ereplay.check_record(rec, metrics, last_ts)
            if problems:
                raise EdgeshadowError(f"{path} line {n}: " + "; ".join(problems))
            last_ts[rec["thing"]] = rec["ts"]
            by_thing.setdefault(rec["thing"], []).append(rec)
    if not by_thing:
        raise EdgeshadowError(f"{path} holds no samples")
    return by_thing


def with_model(cfg_data, thing, rules):
    """The device config (as given, not layered) for `thing` with `rules` as its model rules
    (replacing any it had)."""
    out = dict(cfg_data)
    out["thing"] = thing
    out["rules"] = [r for r in cfg_data.get("rules", []) if r.get("type") != "model"] + rules
    return out


def delta_size(cfg):
    """Bytes of the desired-state document a shadow delta carrying these rules takes."""
    return len(json.dumps({"state": {"desired": {"rules": cfg["rules"]}}}, separators=(",", ":")))


def _write_configs(written, out, several):
    """Write each thing's trained config ({thing: config}): `out` itself, or out/<thing>.json when
    `several`; each file whole (a temporary file renamed). Returns {thing: path}."""
    if several:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EdgeshadowError(f"cannot make the output folder {out}: {e.strerror or e}")
    paths = {}
    for name, new in written.items():
        path = paths[name] = out / f"{name}.json" if several else out
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
            tmp.replace(path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise EdgeshadowError(f"cannot write output {path}: {e.strerror or e}")
    return paths


def train(config_path, input_path, output_path, thing=None, progress=None):
    """Train from input_path; write output_path (one config, or a folder of <thing>.json when
    the input holds several things and none is picked, or into the folder output_path names).
    `progress(msg)`, when given, hears of each thing trained. Returns a list of per-thing summaries."""
    from host_tools.replay import load_config
    cfg = load_config(config_path)
    cfg_data = json.loads(Path(config_path).read_text())
    from host_tools.replay import firmware_modules
    econfig, _ = firmware_modules()
    by_thing = read_records(input_path, cfg)
    if thing is not None:
        if thing not in by_thing:
            raise EdgeshadowError(f"{input_path} has no samples of {thing} (it has: {', '.join(sorted(by_thing))})")
        by_thing = {thing: by_thing[thing]}
    out = Path(output_path)
    several = len(by_thing) > 1 or out.is_dir()
    if several and out.suffix == ".json" and not out.is_dir():
        raise EdgeshadowError(f"{input_path} holds {len(by_thing)} things: give --thing, or an --output folder")
    if not several and not out.parent.is_dir():
        raise EdgeshadowError(f"cannot write output {out}: folder {out.parent} does not exist")
    results, written = [], {}
    for name in sorted(by_thing):
        if progress is not None:
            progress(f"training {name} on {len(by_thing[name])} samples...")
        rules, reports = train_thing(cfg, by_thing[name])
        new = with_model(cfg_data, name, rules)
        try:
            econfig.load(new)
        except econfig.ConfigError as e:
            raise EdgeshadowError(f"the trained config for {name} does not validate: {e}")
        written[name] = new
        model_bytes = len(json.dumps(rules, separators=(",", ":")))
        results.append({"thing": name, "models": reports, "model_bytes": model_bytes,
                        "delta_bytes": delta_size(new)})
    paths = _write_configs(written, out, several)
    for r in results:
        r["output"] = str(paths[r["thing"]])
    return results
