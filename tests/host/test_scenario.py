"""The reference smart-grid scenario generator."""
import random
from collections import Counter

import pytest

from host_tools.sim import reference as scenario
from host_tools.errors import EdgeshadowError


def test_nominal_draws_stay_in_range():
    rng = random.Random(1)
    for _ in range(2000):
        s = scenario.reference_sample(rng, anomalies=False)
        assert not any(scenario.is_out_of_range(m, v) for m, v in s.items())


def classify(s):
    """Which r-branch a sample came from (7..10 look nominal)."""
    if all(v == 0.0 for v in s.values()):
        return 1
    anomalous = tuple(m for m in scenario.METRICS if s[m] == scenario.ANOMALY[m])
    return {scenario.METRICS: 2, ("current",): 3, ("voltage",): 4, ("temperature",): 5,
            ("humidity",): 6, (): "nominal"}[anomalous]


def test_anomaly_generator_follows_the_issue():
    rng = random.Random(2)
    counts = Counter(classify(scenario.reference_sample(rng)) for _ in range(20000))
    for r in range(1, 7):  # each r in 1..10 is drawn with probability 1/10
        assert 1700 < counts[r] < 2300, counts
    assert 7400 < counts["nominal"] < 8600, counts


def test_generate_interleaves_things_deterministically():
    recs = list(scenario.generate(21, 3, seed=5))
    assert len(recs) == 63
    assert [r["thing"] for r in recs[:21]] == [f"grid-sensor-{i:03d}" for i in range(1, 22)]
    assert {r["ts"] for r in recs[21:42]} == {1700000010}
    assert recs == list(scenario.generate(21, 3, seed=5))
    assert recs != list(scenario.generate(21, 3, seed=6))
    calm = list(scenario.generate(["a", "b"], 500, seed=1, anomaly_probability=0.0))
    assert not any(scenario.is_out_of_range(m, v) for r in calm for m, v in r["raw"].items())
    some = list(scenario.generate(["a"], 2000, seed=1, anomaly_probability=0.1))
    n_bad = sum(any(scenario.is_out_of_range(m, v) for m, v in r["raw"].items()) for r in some)
    assert 60 < n_bad < 180  # 10 % anomaly-generator samples, 60 % of those out of range


def test_persistent_anomaly_and_skus():
    recs = list(scenario.persistent_anomaly(n_normal=10, n_anomalous=20, metric="current", value=300, spread=5))
    assert all(295 <= r["raw"]["current"] <= 305 for r in recs[:10])
    assert all(r["raw"]["current"] == 300 for r in recs[10:])
    assert scenario.sku("MV-200A")["ratings"]["current"] == 200
    assert scenario.is_out_of_range("current", 300, rating=200)
    assert not scenario.is_out_of_range("current", 300, rating=500)
    with pytest.raises(EdgeshadowError, match="unknown SKU 'XX'"):
        scenario.sku("XX")
    with pytest.raises(EdgeshadowError):
        list(scenario.generate(2, 1, anomaly_probability=2))
