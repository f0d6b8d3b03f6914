# Detection rules: small objects built from data through a registry.
# `rule.check(value, ts, suspect) -> True (hit), False (good) or None (no opinion this sample)`.
# `suspect` is True when a range or rating rule of the same metric hit this sample: the zscore
# rule does not learn from such samples. `rule.reason(value)` is built only when an alert is raised.
from edge import schema as S

SEVERITIES = ("info", "warning", "critical")
COMMON = ("metric", "type", "name", "severity", "debounce", "clear_after")


class Range:
    def __init__(self, c, cfg):
        self.lo = c.get("min")
        self.hi = c.get("max")

    def check(self, v, ts, suspect):
        if v is None:
            return None
        return (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi)

    def reason(self, v):
        if self.lo is not None and v < self.lo:
            return "below min %s" % self.lo
        return "above max %s" % self.hi


class Rating(Range):
    # Percent of the SKU's rated value for this metric (sku.ratings.<metric>).
    def __init__(self, c, cfg):
        self.rated = cfg["sku"]["ratings"][c["metric"]]
        self.lo = None if "min_pct" not in c else self.rated * c["min_pct"] / 100
        self.hi = None if "max_pct" not in c else self.rated * c["max_pct"] / 100
        self.name = cfg["sku"].get("name", "SKU")

    def reason(self, v):
        pct = v * 100 / self.rated if self.rated else 0
        return "%d%% of %s rating %s" % (int(pct), self.name, self.rated)


class Rate:
    def __init__(self, c, cfg):
        self.max = c["max_per_s"]
        self.last = None
        self.last_ts = None
        self.rate = 0.0

    def check(self, v, ts, suspect):
        if v is None:
            return None
        last, last_ts = self.last, self.last_ts
        self.last, self.last_ts = v, ts
        if last is None or ts <= last_ts:
            return None
        self.rate = abs(v - last) / (ts - last_ts)
        return self.rate > self.max

    def reason(self, v):
        return "changing %s/s (max %s/s)" % (int(self.rate), self.max)


class Stuck:
    def __init__(self, c, cfg):
        self.n = c["samples"]
        self.tol = c.get("tolerance", 0)
        self.ref = None
        self.count = 0

    def check(self, v, ts, suspect):
        if v is None:
            return None
        if self.ref is not None and abs(v - self.ref) <= self.tol:
            self.count += 1
        else:
            self.ref = v
            self.count = 1
        return self.count >= self.n

    def reason(self, v):
        return "unchanged for %d samples" % self.count


class ZScore:
    # Learns mean and deviation from the first `learn` valid samples, then freezes: a persistent
    # anomaly never becomes the new normal. Only relearn() (an explicit command) starts again.
    def __init__(self, c, cfg):
        self.learn = c["learn"]
        self.threshold = c["threshold"]
        self.relearn()

    def relearn(self):
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.std = None
        self.z = 0.0

    def check(self, v, ts, suspect):
        if v is None:
            return None
        if self.std is None:
            if suspect:
                return None
            # Welford's update: stable without a sum of squares
            self.n += 1
            d = v - self.mean
            self.mean += d / self.n
            self.m2 += d * (v - self.mean)
            if self.n >= self.learn:
                self.std = (self.m2 / (self.n - 1)) ** 0.5
            return None
        d = abs(v - self.mean)
        if self.std == 0:
            self.z = 0.0 if d == 0 else 1e9
        else:
            self.z = d / self.std
        return self.z > self.threshold

    def reason(self, v):
        return "z %d vs frozen baseline %d" % (int(self.z), int(self.mean))


class SensorFault:
    def __init__(self, c, cfg):
        self.n = c.get("samples", 3)
        self.count = 0

    def check(self, v, ts, suspect):
        if v is None:
            self.count += 1
            return self.count >= self.n
        self.count = 0
        return False

    def reason(self, v):
        return "%d failed reads in a row" % self.count


def _model(c, cfg):  # imported only by a config that has a model rule
    from edge import model
    return model.Model(c, cfg)


_N = (S.NUM, False)
RULES = {
    "range": (Range, {"min": _N, "max": _N}),
    "rating": (Rating, {"min_pct": (S.NONNEG, False), "max_pct": (S.NONNEG, False)}),
    "rate": (Rate, {"max_per_s": (S.POS, True)}),
    "stuck": (Stuck, {"samples": (S.INT, True), "tolerance": (S.NONNEG, False)}),
    "zscore": (ZScore, {"learn": (S.INT, True), "threshold": (S.POS, True)}),
    "sensor_fault": (SensorFault, {"samples": (S.INT, False)}),
    "model": (_model, None),  # edge.model: a learned model of normal behaviour; validates itself
}
# Rules whose hit marks a sample as not valid for learning a baseline.
LIMIT_RULES = ("range", "rating")


def rule_name(c):
    return c.get("name") or c.get("type")


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
        if t not in RULES:
            problems.append("%s.type: unknown rule %r (known: %s)" % (p, t, ", ".join(sorted(RULES))))
            continue
        if RULES[t][1] is None:
            from edge import model
            model.validate(r, metrics, p, problems)
        else:
            S.check(RULES[t][1], r, p, problems, COMMON)
        if "name" in r and (type(r["name"]) is not str or not r["name"]):
            problems.append("%s.name: must be a non-empty string" % p)
        if r.get("severity", "warning") not in SEVERITIES:
            problems.append("%s.severity: must be one of %s" % (p, ", ".join(SEVERITIES)))
        for k in ("debounce", "clear_after"):
            if k in r and not (type(r[k]) is int and r[k] >= 1):
                problems.append("%s.%s: must be an integer >= 1" % (p, k))
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


def build(c, cfg):
    return RULES[c["type"]][0](c, cfg)
