# Config checks of what the pipeline is built from: metrics, sku, and the registries (calibration
# stages, report filters, rules, diagnoses) with each entry's parameter schema and the cross-field
# rules. Imported by edge.config at boot and for a delta that changes the pipeline only (app.py
# unloads both afterwards), so a delta of interval_s or mqtt settings does not load it.
from edge import config, schema as S
from edge.rules import LIMIT_RULES, rule_name
from edge.diagnosis import _ratings

METRIC_KEYS = ("unit", "sensor", "calibration", "report", "provenance")
# Keys the shadow's reported state uses beside the metrics: no metric may take these names.
RESERVED = ("timestamp", "alerts", "diagnoses", "status", "config_version", "fw", "spool",
            "provenance", "thing")
_N = (S.NUM, False)
STAGE_SCHEMAS = {
    "offset": {"value": (S.NUM, True)},
    "multiply": {"value": (S.NUM, True)},
    "linear": {"gain": _N, "offset": _N},
    "two_point": {"points": (S.POINTS, True)},
    "polynomial": {"coefficients": (S.NUMS, True)},
    "table": {"points": (S.POINTS, True)},
    "clamp": {"min": _N, "max": _N, "ignore_out_of_range": (S.BOOL, False)},
    "round": {"decimals": (S.INT0, False)},
    "kelvin_to_celsius": {},
    "ema": {"alpha": (S.FRACTION, True)},
    "mean": {"window": (S.INT, True)},
    "median": {"window": (S.INT, True)},
    "filter_out": {"value": _N, "values": (S.NUMS, False)},
}
FILTERS = {
    "delta": {"deadband": (S.NONNEG, True), "heartbeat_s": (S.POS, False), "throttle_s": (S.POS, False)},
    "heartbeat": {"heartbeat_s": (S.POS, True)},
    "throttle": {"throttle_s": (S.POS, True)},
}
SEVERITIES = ("info", "warning", "critical")
COMMON = ("metric", "type", "name", "severity", "debounce", "clear_after")
RULE_SCHEMAS = {
    "range": {"min": _N, "max": _N},
    "rating": {"min_pct": (S.NONNEG, False), "max_pct": (S.NONNEG, False)},
    "rate": {"max_per_s": (S.POS, True)},
    "stuck": {"samples": (S.INT, True), "tolerance": (S.NONNEG, False)},
    "zscore": {"learn": (S.INT, True), "threshold": (S.POS, True)},
    "sensor_fault": {"samples": (S.INT, False)},
    "model": None,  # edge.model_checks, imported only for a config with a model rule
}


def validate_stages(stages, path, problems):
    for p, t, st in S.typed_items(stages, path, STAGE_SCHEMAS, "stage", problems):
        S.check(STAGE_SCHEMAS[t], st, p, problems)
        if t == "two_point" and type(st.get("points")) is list and len(st["points"]) > 2:
            problems.append("%s.points: two_point takes exactly 2 pairs" % p)
        if t == "filter_out" and ("value" in st) == ("values" in st):
            problems.append("%s: give exactly one of value, values" % p)
        if t == "clamp" and S.is_num(st.get("min")) and S.is_num(st.get("max")) and st["min"] > st["max"]:
            problems.append("%s.min: must not exceed max" % p)


def validate_filters(items, path, problems):
    for p, t, f in S.typed_items(items, path, FILTERS, "report filter", problems):
        S.check(FILTERS[t], f, p, problems)


def validate_rules(rules, cfg, problems):
    if type(rules) is not list:
        problems.append("rules: must be a list")
        return
    metrics = cfg.get("metrics") if type(cfg.get("metrics")) is dict else {}
    seen = {}
    for i, r in enumerate(rules):
        p = "rules[%d]" % i
        if type(r) is not dict:
            problems.append("%s: must be an object" % p)
            continue
        m = r.get("metric")
        if m not in metrics:
            problems.append("%s.metric: %r is not a metric of this config (known: %s)"
                            % (p, m, ", ".join(sorted(metrics))))
        t = r.get("type")
        if t not in RULE_SCHEMAS:
            problems.append("%s.type: unknown rule %r (known: %s)" % (p, t, ", ".join(sorted(RULE_SCHEMAS))))
            continue
        if RULE_SCHEMAS[t] is None:
            from edge.model_checks import validate_model
            validate_model(r, metrics, p, problems, COMMON)
        else:
            S.check(RULE_SCHEMAS[t], r, p, problems, COMMON)
        if "name" in r and (type(r["name"]) is not str or not r["name"]):
            problems.append("%s.name: must be a non-empty string" % p)
        if r.get("severity", "warning") not in SEVERITIES:
            problems.append("%s.severity: must be one of %s" % (p, ", ".join(SEVERITIES)))
        for k in ("debounce", "clear_after"):
            if k in r and not (type(r[k]) is int and r[k] >= 1):
                problems.append("%s.%s: must be an integer >= 1" % (p, k))
            elif k in r and S.too_big(k, r[k]):
                problems.append("%s.%s: %s" % (p, k, S.too_big(k, r[k])))
        lo, hi = ("min", "max") if t == "range" else ("min_pct", "max_pct")
        if t in LIMIT_RULES:
            if lo not in r and hi not in r:
                problems.append("%s: give %s, %s or both" % (p, lo, hi))
            elif S.is_num(r.get(lo)) and S.is_num(r.get(hi)) and r[lo] >= r[hi]:
                problems.append("%s.%s: must be less than %s" % (p, lo, hi))
        if t == "rating" and m in metrics:
            sku = cfg.get("sku")
            ratings = sku.get("ratings") if type(sku) is dict else None
            if type(ratings) is not dict or not S.is_num(ratings.get(m)) or ratings[m] <= 0:
                problems.append("%s: a rating rule needs sku.ratings.%s (the rated value, > 0)" % (p, m))
        key = (m, rule_name(r))
        if type(m) is str and type(key[1]) is str:
            if key in seen:
                problems.append("%s.name: rules[%d] already is %s/%s; give one of them a distinct \"name\""
                                % (p, seen[key], m, key[1]))
            seen[key] = i


def validate_diagnoses(items, cfg, problems):
    if items is None:
        return
    if type(items) is not list:
        problems.append("diagnoses: must be a list")
        return
    metrics = cfg.get("metrics") if type(cfg.get("metrics")) is dict else {}
    ratings = _ratings(cfg)
    for i, d in enumerate(items):
        p = "diagnoses[%d]" % i
        if type(d) is not dict:
            problems.append("%s: must be an object" % p)
            continue
        if type(d.get("name")) is not str or not d["name"]:
            problems.append("%s.name: must be a non-empty string" % p)
        if "min_confidence" in d and not (S.is_num(d["min_confidence"]) and 0 <= d["min_confidence"] <= 1):
            problems.append("%s.min_confidence: must be a number in [0, 1]" % p)
        for k in d:
            if k not in ("name", "all", "any", "min_confidence"):
                problems.append("%s.%s: unknown key (known: all, any, min_confidence, name)" % (p, k))
        if ("all" in d) == ("any" in d):
            problems.append("%s: give exactly one of all, any" % p)
            continue
        key = "all" if "all" in d else "any"
        terms = d[key]
        if type(terms) is not list or not terms:
            problems.append("%s.%s: must be a non-empty list of terms" % (p, key))
            continue
        for j, t in enumerate(terms):
            _check_term(t, "%s.%s[%d]" % (p, key, j), metrics, ratings, problems)


def _check_term(t, p, metrics, ratings, problems):
    if type(t) is not dict:
        problems.append("%s: must be an object" % p)
        return
    m = t.get("metric")
    if m not in metrics:
        problems.append("%s.metric: %r is not a metric of this config" % (p, m))
    if ("rises" in t) == ("falls" in t):
        problems.append("%s: give exactly one of rises, falls" % p)
    else:
        k = "rises" if "rises" in t else "falls"
        r = t[k]
        if type(r) is not list or len(r) != 2 or not S.is_num(r[0]) or not S.is_num(r[1]) or r[0] >= r[1]:
            problems.append("%s.%s: must be [a, b] numbers with a < b" % (p, k))
    if "of_rating" in t:
        if type(t["of_rating"]) is not bool:
            problems.append("%s.of_rating: must be true or false" % p)
        elif t["of_rating"] and not (S.is_num(ratings.get(m)) and ratings.get(m, 0) > 0):
            problems.append("%s.of_rating: needs sku.ratings.%s" % (p, m))
    for k in t:
        if k not in ("metric", "rises", "falls", "of_rating"):
            problems.append("%s.%s: unknown key (known: falls, metric, of_rating, rises)" % (p, k))


def validate_sku(sku, p):
    if sku is None:
        return
    if type(sku) is not dict:
        p.append("sku: must be an object")
        return
    if "name" in sku and type(sku["name"]) is not str:
        p.append("sku.name: must be a string")
    r = sku.get("ratings", {})
    if type(r) is not dict:
        p.append("sku.ratings: must be an object of metric: rated value")
    else:
        for m in sorted(r):
            if not (S.is_num(r[m]) and r[m] > 0):
                p.append("sku.ratings.%s: must be a number > 0" % m)
    for k in sorted(sku):
        if k not in ("name", "ratings"):
            p.append("sku.%s: unknown key (known: name, ratings)" % k)


def validate_metrics(metrics, p):
    if metrics is None:
        p.append("metrics: required")
        return
    if type(metrics) is not dict or not metrics:
        p.append("metrics: must be an object with at least one metric")
        return
    for name in sorted(metrics):
        path = "metrics.%s" % name
        m = metrics[name]
        if not config.valid_name(name, 64) or name in RESERVED:
            p.append("%s: metric names are 1 to 64 characters of A-Z a-z 0-9 _ : - and not one of %s"
                     % (path, ", ".join(RESERVED)))
        if type(m) is not dict:
            p.append("%s: must be an object" % path)
            continue
        for k in sorted(m):
            if k not in METRIC_KEYS:
                p.append("%s.%s: unknown key (known: %s)" % (path, k, ", ".join(METRIC_KEYS)))
        if "unit" in m and type(m["unit"]) is not str:
            p.append("%s.unit: must be a string" % path)
        s = m.get("sensor")
        if s is not None and (type(s) is not dict or type(s.get("driver")) is not str):
            p.append("%s.sensor: must be an object with a string \"driver\"" % path)
        validate_stages(m.get("calibration", []), path + ".calibration", p)
        validate_filters(m.get("report", []), path + ".report", p)
        if "provenance" in m and type(m["provenance"]) is not dict:
            p.append("%s.provenance: must be an object" % path)
