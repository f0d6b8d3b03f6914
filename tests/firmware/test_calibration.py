from _helpers import approx
from edge import calibration as cal, checks
from edge import config


def chain(*stages):
    return cal.build_chain(list(stages))


def test_linear_offset_multiply_and_empty_chain():
    assert chain()(5) == 5
    assert chain({"type": "offset", "value": -2})(5) == 3
    assert chain({"type": "multiply", "value": 3})(5) == 15
    assert approx(chain({"type": "linear", "gain": 2.0, "offset": 1.5})(10), 21.5)
    assert chain({"type": "linear"})(7) == 7.0


def test_two_point_and_polynomial():
    tp = chain({"type": "two_point", "points": [[100, 0.0], [3100, 30.0]]})
    assert approx(tp(100), 0.0) and approx(tp(1600), 15.0) and approx(tp(3100), 30.0)
    poly = chain({"type": "polynomial", "coefficients": [1.0, 2.0, 0.5]})
    assert approx(poly(2.0), 1 + 4 + 2)


def test_table_interpolates_and_extrapolates():
    t = chain({"type": "table", "points": [[0, 0.0], [1000, 0.9], [3000, 3.0], [4095, 3.3]]})
    assert approx(t(500), 0.45)
    assert approx(t(2000), 1.95)
    assert approx(t(3000), 3.0)
    assert approx(t(-100), -0.09)  # the first segment extended
    assert approx(t(4095), 3.3)


def test_clamp_limits_or_drops():
    assert chain({"type": "clamp", "min": 0, "max": 10})(12) == 10
    assert chain({"type": "clamp", "min": 0, "max": 10})(-1) == 0
    drop = chain({"type": "clamp", "min": 0, "max": 10, "ignore_out_of_range": True},
                 {"type": "offset", "value": 1})
    assert drop(12) is None and drop(5) == 6


def test_round_and_kelvin():
    r = chain({"type": "round", "decimals": 2})
    assert r(1.005) == 1.01  # a half-way point rounds up on every runtime (float32 and float64)
    assert r(2.345678) == 2.35 and r(-2.345678) == -2.35
    assert chain({"type": "round"})(2.5) == 3.0
    assert approx(chain({"type": "kelvin_to_celsius"})(300.0), 26.85)


def test_round_is_the_same_in_float32_and_float64_at_half_way_points():
    # 0.285 is 0.28499999... in float64 and 0.28500001 in float32: round(x, 2) gives 0.28 on one
    # and 0.29 on the other; the Round stage gives 0.29 on both (this test runs on CPython, the
    # unix port and the ESP32-like runtime).
    r2 = chain({"type": "round", "decimals": 2})
    assert [r2(x) for x in (0.285, 1.005, 2.675, 0.125, -0.285, 0.284, 0.286)] == \
        [0.29, 1.01, 2.68, 0.13, -0.28, 0.28, 0.29]
    r1 = chain({"type": "round", "decimals": 1})
    assert [r1(x) for x in (24000.35, 599.95, 0.05, 22.45)] == [24000.4, 600.0, 0.1, 22.5]
    assert chain({"type": "round"})(-2.5) == -2.0  # half up, also below zero


def test_diagnosis_confidence_in_the_shadow_rounds_alike_on_every_runtime():
    from edge.shadow import reported_state
    result = {"ts": 0, "values": {}, "diagnoses": [{"name": "d", "confidence": c} for c in (0.285, 0.575, 0.999, 0.5)]}
    assert [d["confidence"] for d in reported_state({}, result)["diagnoses"]] == [0.29, 0.58, 1.0, 0.5]


def test_stateful_filters_keep_state_and_skip_none():
    ema = chain({"type": "ema", "alpha": 0.5})
    assert ema(10) == 10 and ema(20) == 15.0 and ema(None) is None and ema(15) == 15.0
    mean = chain({"type": "mean", "window": 3})
    assert [mean(x) for x in (3, 6, 9, 12)] == [3.0, 4.5, 6.0, 9.0]
    med = chain({"type": "median", "window": 3})
    assert [med(x) for x in (5, 100, 7, 6)] == [5, 52.5, 7, 7]


def test_filter_out_drops_sentinels():
    f = chain({"type": "filter_out", "values": [85, -127]}, {"type": "multiply", "value": 2})
    assert f(85) is None and f(-127) is None and f(20) == 40
    assert chain({"type": "filter_out", "value": 0})(0) is None


def test_registry_builds_every_stage_and_validation_names_problems():
    for name in cal.STAGES:
        assert callable(cal._factory(name))
    assert sorted(cal.STAGES) == sorted(checks.STAGE_SCHEMAS)  # every stage has its schema
    p = []
    checks.validate_stages([{"type": "linear", "gain": "x"}, {"type": "ema", "alpha": 2},
                         {"type": "table", "points": [[2, 0], [1, 1]]}, {"type": "offset"},
                         {"type": "clamp", "min": 5, "max": 1, "colour": 1}, 3], "m", p)
    assert p == ["m[0].gain: must be a number",
                 "m[1].alpha: must be a number in (0, 1]",
                 "m[2].points: must be a list of at least 2 [raw, reference] pairs with raw strictly increasing",
                 "m[3].value: required",
                 "m[4].colour: unknown parameter (known: ignore_out_of_range, max, min)",
                 "m[4].min: must not exceed max",
                 "m[5]: must be an object with a \"type\""], p


def test_report_filter_deadband_heartbeat_throttle():
    f = cal.build_report_filter([{"type": "delta", "deadband": 5, "heartbeat_s": 300}])
    assert f.should_report(100, 0)
    assert not f.should_report(104, 10)
    assert f.should_report(106, 20)      # beyond the deadband of the last reported value
    assert not f.should_report(107, 30)
    assert f.should_report(107, 320)     # heartbeat
    assert f.should_report(None, 330)    # losing the value is a change
    t = cal.build_report_filter([{"type": "throttle", "throttle_s": 60}])
    assert t.should_report(1, 0) and not t.should_report(2, 30) and t.should_report(3, 60)
    always = cal.build_report_filter([])
    assert always.should_report(1, 0) and not always.should_report(1, 10) and always.should_report(2, 20)


def test_report_filters_validate():
    p = []
    checks.validate_filters([{"type": "delta", "deadband": -1}, {"type": "sometimes"}], "r", p)
    assert p[0] == "r[0].deadband: must be a number >= 0"
    assert p[1].startswith("r[1].type: unknown report filter 'sometimes'")
