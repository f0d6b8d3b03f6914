"""Least-squares fitting of calibration points on the host; the device only evaluates the
coefficients (edge.calibration's linear and polynomial stages).

    fit = fit_polynomial([(raw, reference), ...], degree=2)
    fit.coefficients   # ascending: c0 + c1*x + c2*x^2, as the "polynomial" stage takes them
    fit.residuals      # reference - fitted, per point; fit.rms, fit.max_abs_residual
    fit.stage()        # {"type": "polynomial", "coefficients": [...]}
"""
import math
from dataclasses import dataclass, field

from host_tools.errors import EdgeshadowError


@dataclass
class Fit:
    kind: str                      # "linear" or "polynomial"
    coefficients: list             # ascending powers of the raw value
    residuals: list = field(default_factory=list)

    @property
    def rms(self):
        return math.sqrt(sum(r * r for r in self.residuals) / len(self.residuals)) if self.residuals else 0.0

    @property
    def max_abs_residual(self):
        return max((abs(r) for r in self.residuals), default=0.0)

    @property
    def gain(self):
        return self.coefficients[1] if len(self.coefficients) > 1 else 0.0

    @property
    def offset(self):
        return self.coefficients[0]

    def __call__(self, x):
        y = 0.0
        for c in reversed(self.coefficients):
            y = y * x + c
        return y

    def stage(self):
        """The calibration stage for a device config."""
        if self.kind == "linear":
            return {"type": "linear", "gain": self.gain, "offset": self.offset}
        return {"type": "polynomial", "coefficients": list(self.coefficients)}


def _points(points, need):
    pts = []
    for i, p in enumerate(points):
        try:
            x, y = p
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            raise EdgeshadowError(f"calibration point {i} must be a (raw, reference) pair of numbers, got {p!r}")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise EdgeshadowError(f"calibration point {i} is not finite: {p!r}")
        pts.append((x, y))
    distinct = len({x for x, _ in pts})
    if distinct < need:
        raise EdgeshadowError(f"need at least {need} points with distinct raw values for this fit, got {distinct}")
    return pts


def _solve(a, b):
    """Gaussian elimination with partial pivoting (a is square, small)."""
    n = len(a)
    m = [row[:] + [bv] for row, bv in zip(a, b)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-300:
            raise EdgeshadowError("calibration points do not determine the fit (singular system)")
        m[col], m[piv] = m[piv], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def fit_polynomial(points, degree=2):
    """Least-squares polynomial through (raw, reference) points. The raw values are centred and
    scaled to [-1, 1] before solving the normal equations (well conditioned for ADC-sized
    numbers), then the coefficients are expanded back to powers of the raw value."""
    if not isinstance(degree, int) or degree < 1:
        raise EdgeshadowError(f"degree must be an integer >= 1, got {degree!r}")
    pts = _points(points, degree + 1)
    xs = [x for x, _ in pts]
    mid = (max(xs) + min(xs)) / 2
    half = (max(xs) - min(xs)) / 2
    us = [(x - mid) / half for x in xs]
    n = degree + 1
    ata = [[sum(u ** (i + j) for u in us) for j in range(n)] for i in range(n)]
    atb = [sum((u ** i) * y for u, (_, y) in zip(us, pts)) for i in range(n)]
    d = _solve(ata, atb)  # y = sum d_k ((x - mid)/half)^k
    coeffs = [0.0] * n
    for k, dk in enumerate(d):  # expand ((x - mid)/half)^k by the binomial theorem
        for j in range(k + 1):
            coeffs[j] += dk * math.comb(k, j) * (-mid) ** (k - j) / half ** k
    kind = "linear" if degree == 1 else "polynomial"
    f = Fit(kind, coeffs)
    f.residuals = [y - f(x) for x, y in pts]
    return f


def fit_linear(points):
    """Least-squares line: reference = gain * raw + offset."""
    return fit_polynomial(points, 1)
