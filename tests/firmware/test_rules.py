from edge import rules
from test_edge_fixtures import grid_cfg


def build(c):
    return rules.build(c, grid_cfg())


def test_range():
    r = build({"metric": "voltage", "type": "range", "min": 23000, "max": 25000})
    assert r.check(22999, 0, False) and r.check(25001, 0, False)
    assert not r.check(23000, 0, False) and not r.check(25000, 0, False)
    assert r.check(None, 0, False) is None
    assert r.reason(25001) == "above max 25000" and r.reason(1) == "below min 23000"


def test_rating_uses_the_sku():
    c = grid_cfg()
    for rated, expect in ((200, True), (500, False)):
        c["sku"] = {"name": "MV-%dA" % rated, "ratings": {"current": rated}}
        r = rules.build({"metric": "current", "type": "rating", "max_pct": 100}, c)
        assert r.check(300, 0, False) is expect
    r = rules.build({"metric": "current", "type": "rating", "max_pct": 100}, grid_cfg())
    assert r.check(600, 0, False) is False and r.check(600.5, 0, False) is True
    assert r.reason(900) == "150% of MV-600A rating 600"


def test_rate_per_second():
    r = build({"metric": "current", "type": "rate", "max_per_s": 2})
    assert r.check(100, 0, False) is None
    assert r.check(110, 10, False) is False   # 1 A/s
    assert r.check(150, 20, False) is True    # 4 A/s
    assert r.check(None, 30, False) is None


def test_stuck_after_n_samples():
    r = build({"metric": "temperature", "type": "stuck", "samples": 3, "tolerance": 0.1})
    assert [r.check(v, 0, False) for v in (50, 50.05, 50, 51, 51, 51)] == [False, False, True, False, False, True]


def test_zscore_freezes_and_never_adapts():
    r = build({"metric": "current", "type": "zscore", "learn": 50, "threshold": 4.0})
    for i in range(50):
        assert r.check(300 + (i % 5) - 2, i, False) is None   # learning
    assert r.std is not None and abs(r.mean - 300) < 1e-9
    for i in range(1000):  # a persistent anomaly: flagged every time, baseline unchanged
        assert r.check(320, 100 + i, False) is True
    assert abs(r.mean - 300) < 1e-9
    assert r.check(301, 2000, False) is False
    r.relearn()
    assert r.check(320, 3000, False) is None


def test_zscore_learns_only_valid_samples():
    r = build({"metric": "current", "type": "zscore", "learn": 3, "threshold": 4.0})
    r.check(None, 0, False)
    r.check(5000, 1, True)  # flagged by a range/rating rule this sample: not learned
    for v in (10, 11, 12):
        r.check(v, 2, False)
    assert r.n == 3 and r.mean == 11


def test_sensor_fault_counts_failed_reads():
    r = build({"metric": "humidity", "type": "sensor_fault", "samples": 2})
    assert [r.check(v, 0, False) for v in (None, None, None, 50, None)] == [False, True, True, False, False]


def test_every_rule_has_its_schema_in_the_checks():
    from edge import checks, rules
    assert sorted(rules.RULES) == sorted(checks.RULE_SCHEMAS)
