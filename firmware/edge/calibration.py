# Calibration stages and reporting filters: small callables built from data through a registry.
# A stage is `stage(value) -> value or None`; None means "no value" (failed read or dropped) and
# passes through every later stage untouched. Adding a stage is one class and one registry line.
from edge import round_half_up, schema as S


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
    # Two (raw, reference) pairs define the line; the host may fit more points with host_tools.fit.
    def __init__(self, c):
        (r1, v1), (r2, v2) = c["points"]
        self.gain = (v2 - v1) / (r2 - r1)
        self.offset = v1 - self.gain * r1


class Polynomial:
    # coefficients in ascending order: c0 + c1*x + c2*x^2 ... (evaluated with Horner's rule)
    def __init__(self, c):
        self.c = tuple(reversed(c["coefficients"]))

    def __call__(self, x):
        y = 0.0
        for k in self.c:
            y = y * x + k
        return y


class Table:
    # Piecewise-linear interpolation through (raw, reference) points; the end segments extrapolate.
    def __init__(self, c):
        self.raw = tuple(p[0] for p in c["points"])
        self.ref = tuple(p[1] for p in c["points"])

    def __call__(self, x):
        raw = self.raw
        i = 1
        n = len(raw) - 1
        while i < n and x > raw[i]:
            i += 1
        r0 = raw[i - 1]
        v0 = self.ref[i - 1]
        return v0 + (x - r0) * (self.ref[i] - v0) / (raw[i] - r0)


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


class KelvinToCelsius:
    def __init__(self, c):
        pass

    def __call__(self, x):
        return x - 273.15


class Ema:
    def __init__(self, c):
        self.a = c["alpha"]
        self.y = None

    def __call__(self, x):
        y = self.y
        self.y = x if y is None else y + self.a * (x - y)
        return self.y


class _Window:
    def __init__(self, c):
        self.buf = [0.0] * c["window"]
        self.n = 0
        self.i = 0

    def _push(self, x):
        buf = self.buf
        buf[self.i] = x
        self.i = (self.i + 1) % len(buf)
        if self.n < len(buf):
            self.n += 1


class Mean(_Window):
    # Sliding-window mean; summed afresh each time (no drifting running sum; windows are small).
    def __call__(self, x):
        self._push(x)
        n = self.n
        buf = self.buf
        s = 0.0
        for k in range(n):
            s += buf[k]
        return s / n


class Median(_Window):
    def __call__(self, x):
        self._push(x)
        w = sorted(self.buf[:self.n])
        n = self.n
        return w[n // 2] if n & 1 else (w[n // 2 - 1] + w[n // 2]) / 2


class FilterOut:
    # Drops sentinel readings (DS18B20's 85 and -127, an ADC's 0 or 4095...).
    def __init__(self, c):
        v = c.get("values")
        self.values = tuple(v) if v is not None else (c["value"],)

    def __call__(self, x):
        return None if x in self.values else x


_N = (S.NUM, False)
# name -> (factory, parameter schema)
STAGES = {
    "offset": (Offset, {"value": (S.NUM, True)}),
    "multiply": (Multiply, {"value": (S.NUM, True)}),
    "linear": (Linear, {"gain": _N, "offset": _N}),
    "two_point": (TwoPoint, {"points": (S.POINTS, True)}),
    "polynomial": (Polynomial, {"coefficients": (S.NUMS, True)}),
    "table": (Table, {"points": (S.POINTS, True)}),
    "clamp": (Clamp, {"min": _N, "max": _N, "ignore_out_of_range": (S.BOOL, False)}),
    "round": (Round, {"decimals": (S.INT0, False)}),
    "kelvin_to_celsius": (KelvinToCelsius, {}),
    "ema": (Ema, {"alpha": (S.FRACTION, True)}),
    "mean": (Mean, {"window": (S.INT, True)}),
    "median": (Median, {"window": (S.INT, True)}),
    "filter_out": (FilterOut, {"value": _N, "values": (S.NUMS, False)}),
}


def validate_stages(stages, path, problems):
    for p, t, st in S.typed_items(stages, path, STAGES, "stage", problems):
        S.check(STAGES[t][1], st, p, problems)
        if t == "two_point" and type(st.get("points")) is list and len(st["points"]) > 2:
            problems.append("%s.points: two_point takes exactly 2 pairs" % p)
        if t == "filter_out" and ("value" in st) == ("values" in st):
            problems.append("%s: give exactly one of value, values" % p)
        if t == "clamp" and S.is_num(st.get("min")) and S.is_num(st.get("max")) and st["min"] > st["max"]:
            problems.append("%s.min: must not exceed max" % p)


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
    return Chain(STAGES[c["type"]][0](c) for c in stages_cfg or ())


# ---- reporting filters: decide whether a calibrated value is worth publishing ----
FILTERS = {
    "delta": {"deadband": (S.NONNEG, True), "heartbeat_s": (S.POS, False), "throttle_s": (S.POS, False)},
    "heartbeat": {"heartbeat_s": (S.POS, True)},
    "throttle": {"throttle_s": (S.POS, True)},
}


def validate_filters(items, path, problems):
    for p, t, f in S.typed_items(items, path, FILTERS, "report filter", problems):
        S.check(FILTERS[t], f, p, problems)


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
