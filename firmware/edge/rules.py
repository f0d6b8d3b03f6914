# Detection rules: small objects built from data through a registry.
# `rule.check(value, ts, suspect) -> True (hit), False (good) or None (no opinion this sample)`.
# `suspect` is True when a range or rating rule of the same metric hit this sample: the zscore
# rule does not learn from such samples. `rule.reason(value)` is built only when an alert is raised.


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


# name -> factory (edge/checks.py holds each rule's parameter schema)
RULES = {
    "range": Range,
    "rating": Rating,
    "rate": Rate,
    "stuck": Stuck,
    "zscore": ZScore,
    "sensor_fault": SensorFault,
    "model": _model,  # edge.model: a learned model of normal behaviour, imported only when used
}
# Rules whose hit marks a sample as not valid for learning a baseline.
LIMIT_RULES = ("range", "rating")


def rule_name(c):
    return c.get("name") or c.get("type")


def build(c, cfg):
    return RULES[c["type"]](c, cfg)
