# Calibration stages and reporting filters: small callables built from data through a registry.
# A stage is `stage(value) -> value or None`; None means "no value" (failed read or dropped) and
# passes through every later stage untouched. Adding a stage is one class and one registry line.
from edge import round_half_up


class Offset:
    def __init__(self, c):
        self.v = c["value"]

    def __call__(self, x):
        return x + self.v


class Multiply:
    def __init__(self, c):
        self.v = c["value"]

    def __call__(self, x):
        return x * self.v


class Linear:
    def __init__(self, c):
        self.gain = c.get("gain", 1.0)
        self.offset = c.get("offset", 0.0)

    def __call__(self, x):
        return x * self.gain + self.offset


class TwoPoint(Linear):
    # Two (raw, reference) pairs define the line; the host may fit more points with host_tools.bench.fit.
    def __init__(self, c):
        (r1, v1), (r2, v2) = c["points"]
        self.gain = (v2 - v1) / (r2 - r1)
        self.offset = v1 - self.gain * r1


class Clamp:
    def __init__(self, c):
        self.lo = c.get("min")
        self.hi = c.get("max")
        self.drop = c.get("ignore_out_of_range", False)

    def __call__(self, x):
        if self.lo is not None and x < self.lo:
            return None if self.drop else self.lo
        if self.hi is not None and x > self.hi:
            return None if self.drop else self.hi
        return x


class Round:
    # Half-way points up, alike in float32 and float64 (edge.round_half_up), unlike round(x, n).
    def __init__(self, c):
        self.scale = 10 ** c.get("decimals", 0)

    def __call__(self, x):
        return round_half_up(x, self.scale)


# name -> factory, or the name of a class in edge/stages.py (the stages few configs use: imported
# only by a config that does). edge/checks.py holds each stage's parameter schema.
STAGES = {
    "offset": Offset,
    "multiply": Multiply,
    "linear": Linear,
    "two_point": TwoPoint,
    "polynomial": "Polynomial",
    "table": "Table",
    "clamp": Clamp,
    "round": Round,
    "kelvin_to_celsius": "KelvinToCelsius",
    "ema": "Ema",
    "mean": "Mean",
    "median": "Median",
    "filter_out": "FilterOut",
}


class Chain:
    def __init__(self, stages):
        self.stages = tuple(stages)

    def __call__(self, x):
        for s in self.stages:
            if x is None:
                return None
            x = s(x)
        return x


def build_chain(stages_cfg):
    """Stages from validated config (edge.config checks them first)."""
    return Chain(_factory(c["type"])(c) for c in stages_cfg or ())


def _factory(name):
    f = STAGES[name]
    if type(f) is str:
        from edge import stages
        f = getattr(stages, f)
    return f


# ---- reporting filters: decide whether a calibrated value is worth publishing ----
class ReportFilter:
    """Report on change beyond `deadband` (any change without a delta filter), never more often
    than every `throttle_s`, and at least every `heartbeat_s` even without change."""

    def __init__(self, deadband=None, heartbeat_s=None, throttle_s=None):
        self.deadband = deadband
        self.heartbeat_s = heartbeat_s
        self.throttle_s = throttle_s
        self.last = None
        self.last_ts = None

    def should_report(self, value, ts):
        last_ts = self.last_ts
        if last_ts is None:
            changed = True
        else:
            last = self.last
            if value is None or last is None:
                changed = value is not last
            elif self.deadband is None:
                changed = value != last
            else:
                changed = abs(value - last) > self.deadband
            age = ts - last_ts
            if changed and self.throttle_s is not None and age < self.throttle_s:
                changed = False
            if not changed and self.heartbeat_s is not None and age >= self.heartbeat_s:
                changed = True
        if changed:
            self.last = value
            self.last_ts = ts
        return changed


def build_report_filter(cfg_list):
    kw = {}
    for f in cfg_list or ():
        for k in ("deadband", "heartbeat_s", "throttle_s"):
            if k in f:
                kw[k] = f[k]
    return ReportFilter(**kw)
