"""Least-squares calibration fits (host side); the device evaluates the coefficients."""
import random
import sys
from pathlib import Path

import pytest

from host_tools.bench import fit
from host_tools.errors import EdgeshadowError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from edge import calibration  # noqa: E402


def test_linear_exact_and_noisy():
    f = fit.fit_linear([(0, 1.0), (10, 21.0), (20, 41.0)])
    assert f.gain == pytest.approx(2.0) and f.offset == pytest.approx(1.0)
    assert f.max_abs_residual < 1e-9
    rng = random.Random(3)
    pts = [(x, 0.5 * x - 3 + rng.gauss(0, 0.1)) for x in range(100)]
    g = fit.fit_linear(pts)
    assert g.gain == pytest.approx(0.5, abs=0.01) and g.offset == pytest.approx(-3, abs=0.1)
    assert 0.05 < g.rms < 0.2 and len(g.residuals) == 100
    assert sum(g.residuals) == pytest.approx(0, abs=1e-6)  # least squares: residuals balance


def test_polynomial_on_adc_sized_raw_values():
    true = [0.13, 7.9e-4, 1.2e-8]  # ascending
    pts = [(x, true[0] + true[1] * x + true[2] * x * x) for x in range(0, 4096, 128)]
    f = fit.fit_polynomial(pts, 2)
    for got, want in zip(f.coefficients, true):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    # the device's polynomial stage evaluates the fitted coefficients to the same values
    stage = calibration.build_chain([f.stage()])
    assert f.stage()["type"] == "polynomial"
    for x, y in pts:
        assert stage(x) == pytest.approx(y, abs=1e-9)
    assert fit.fit_linear(pts).stage().keys() == {"type", "gain", "offset"}


def test_fit_errors_name_the_problem():
    with pytest.raises(EdgeshadowError, match="need at least 3 points"):
        fit.fit_polynomial([(1, 1), (2, 2)], 2)
    with pytest.raises(EdgeshadowError, match="need at least 2 points with distinct raw values"):
        fit.fit_linear([(1, 1), (1, 2)])
    with pytest.raises(EdgeshadowError, match="calibration point 1"):
        fit.fit_linear([(1, 1), ("a", 2), (3, 3)])
    with pytest.raises(EdgeshadowError, match="degree"):
        fit.fit_polynomial([(1, 1), (2, 2)], 0)


def test_r2_and_the_numpy_solution():
    import numpy as np
    rng = random.Random(5)
    pts = [(x / 10, 3.0 * x / 10 + 0.2 + rng.gauss(0, 0.05)) for x in range(20)]
    f = fit.fit_linear(pts)
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    gain, offset = np.polyfit(xs, ys, 1)
    assert f.gain == pytest.approx(gain, rel=1e-9) and f.offset == pytest.approx(offset, rel=1e-9)
    ss_res = float(np.sum((ys - (gain * xs + offset)) ** 2))
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    assert f.r2 == pytest.approx(1 - ss_res / ss_tot, rel=1e-12) and 0.99 < f.r2 < 1.0
    assert fit.fit_linear([(0, 1.0), (1, 3.0)]).r2 == 1.0
    assert isinstance(f.coefficients[0], float) and isinstance(f.residuals[0], float)  # JSON-ready
