# The calibration stages few configs use (polynomial, table, kelvin_to_celsius, ema, mean,
# median, filter_out): imported only when a config names one (edge.calibration.STAGES), so a board
# whose config does not keeps them out of its RAM.


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
