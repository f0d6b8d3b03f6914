"""Least-squares fitting of calibration points on the host; the device only evaluates the
coefficients (edge.calibration's linear and polynomial stages).

    fit = fit_polynomial([(raw, reference), ...], degree=2)
    fit.coefficients   # ascending: c0 + c1*x + c2*x^2, as the "polynomial" stage takes them
    fit.residuals      # reference - fitted, per point; fit.rms, fit.max_abs_residual, fit.r2
    fit.stage()        # {"type": "polynomial", "coefficients": [...]}
"""
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from host_tools.errors import EdgeshadowError


@dataclass
class Fit:
    kind: str                      # "linear" or "polynomial"
    coefficients: list             # ascending powers of the raw value
    residuals: list = field(default_factory=list)
    references: list = field(default_factory=list)  # the fitted points' reference values

    @property
    def rms(self):
        return math.sqrt(sum(r * r for r in self.residuals) / len(self.residuals)) if self.residuals else 0.0

    @property
    def max_abs_residual(self):
        return max((abs(r) for r in self.residuals), default=0.0)

    @property
    def r2(self):
        """Coefficient of determination over the references (1.0: the fit explains them all)."""
        if not self.references:
            return None
        mean = sum(self.references) / len(self.references)
        total = sum((y - mean) ** 2 for y in self.references)
        if total == 0:
            return None
        return 1.0 - sum(r * r for r in self.residuals) / total

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


def fit_polynomial(points, degree=2):
    """Least-squares polynomial through (raw, reference) points, by numpy (Polynomial.fit scales the
    raw values to [-1, 1] before solving, well conditioned for ADC-sized numbers; convert() expands
    the coefficients back to powers of the raw value)."""
    if not isinstance(degree, int) or isinstance(degree, bool) or degree < 1:
        raise EdgeshadowError(f"degree must be an integer >= 1, got {degree!r}")
    pts = _points(points, degree + 1)
    xs = np.array([x for x, _ in pts])
    ys = np.array([y for _, y in pts])
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.RankWarning)
        try:
            poly = np.polynomial.Polynomial.fit(xs, ys, degree).convert()
        except (np.linalg.LinAlgError, np.exceptions.RankWarning):
            raise EdgeshadowError("calibration points do not determine the fit (singular system)")
    coeffs = [float(c) for c in poly.coef] + [0.0] * (degree + 1 - len(poly.coef))
    f = Fit("linear" if degree == 1 else "polynomial", coeffs)
    f.residuals = [float(y - f(x)) for x, y in pts]
    f.references = [y for _, y in pts]
    return f


def fit_linear(points):
    """Least-squares line: reference = gain * raw + offset."""
    return fit_polynomial(points, 1)
