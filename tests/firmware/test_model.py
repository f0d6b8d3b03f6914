from edge import config, model
from edge.pipeline import Device
from test_edge_fixtures import grid_cfg

# voltage = 24000 - 2 * current, in whole volts (scale 1): expected = (w0 + w1 * I) >> 14
RULE = {"metric": "voltage", "type": "model", "scale": 1, "inputs": [["current", 1, 1, 0]],
        "w": [24000 << 14, -(2 << 14)], "frac": 14, "sd": 20, "shift": [384, 192], "rough": [512, 256],
        "frozen": 30, "load": [0, -600], "excess": "excess_sag", "debounce": 3, "clear_after": 10}


def _noise():
    x = 12345
    while True:  # a small LCG: the same numbers on every runtime
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        yield (x >> 8) % 21 - 10


def _samples(n, t0=0, offset=0, sag=2, noise_x=1, frozen_at=None, ramp=0):
    nz = _noise()
    for i in range(n):
        cur = 200 + abs(i % 400 - 200)  # a load cycle of 400 samples between 200 and 400 A
        v = 24000 - sag * cur + offset + ramp * i // 1000 + next(nz) * noise_x
        if frozen_at is not None and i >= frozen_at:
            v = 0
        yield t0 + 10 * i, {"current": cur, "voltage": v}


def _chain(*parts):
    for p in parts:
        for x in p:
            yield x


def _run(rule, samples):
    """(the rule, its verdict per sample): a bytearray, 0 good, 1 hit, 2 no opinion (small on a board)."""
    m = model.Model(rule, None)
    out = bytearray()
    frozen = None
    for ts, values in samples:
        if values["voltage"] == 0:
            values["voltage"] = frozen
        frozen = values["voltage"]
        m.see(values)
        hit = m.check(values["voltage"], ts, False)
        out.append(2 if hit is None else 1 if hit else 0)
    return m, out


def _n(b, v):
    n = 0
    for x in b:
        if x == v:
            n += 1
    return n


def _all(b):
    return len(b) > 0 and _n(b, 1) == len(b)


def _any(b):
    return _n(b, 1) > 0


def test_day_sin_table():
    assert [model.day_sin(t) for t in (0, 10800, 21600, 43200, 64800, 86399)] == [0, 2896, 4096, 0, -4096, 0]
    assert model.day_sin(450) == 134  # halfway between the first two steps
    quarter = [model.day_sin(t) for t in range(0, 21601, 300)]
    assert quarter == sorted(quarter)


def test_normal_behaviour_is_quiet():
    m, out = _run(RULE, _samples(2000))
    assert _n(out, 0) == 2000


def test_a_slow_drift_is_flagged_named_and_never_learned():
    m, out = _run(RULE, _samples(6000, ramp=20))  # +20 V per 1000 samples
    first = 0
    while out[first] != 1:
        first += 1
    assert 1000 < first < 2500
    assert _all(out[first:])  # frozen baseline: thousands of samples later it is still not "normal"
    assert m.label == "drift" and m.diag["name"] == "drift:voltage"
    assert m.reason(0).startswith("drift: expected 2")


def test_a_sudden_shift_is_named_by_its_direction_against_the_load_effect():
    # voltage sags with load (the load term is negative): a sudden rise is a relation breaking,
    # a sudden extra drop an excess of the load's effect
    m, out = _run(RULE, _samples(600, offset=60))
    assert out[0] == 0 and _all(out[40:]) and m.label == "broken_relationship"
    m, out = _run(RULE, _samples(600, offset=-60))
    assert _all(out[40:]) and m.label == "excess_sag"


def test_no_sag_with_load_is_a_broken_relationship():
    m, out = _run(RULE, _chain(_samples(600), _samples(3000, t0=6000, sag=0, offset=-400)))
    assert not _any(out[:600]) and _all(out[700:])
    assert m.diag["name"] == "broken_relationship:voltage"


def test_more_sag_than_load_explains_is_the_excess_fault():
    m, out = _run(RULE, _chain(_samples(600), _samples(3000, t0=6000, sag=2.7)))
    assert _all(out[1200:]) and m.diag["name"] == "excess_sag:voltage"


def test_noise_growth_is_degradation_and_a_stuck_value_is_frozen():
    m, out = _run(RULE, _chain(_samples(600), _samples(600, t0=6000, noise_x=5)))
    assert not _any(out[:600]) and _all(out[650:]) and m.label == "degradation"
    m, out = _run(RULE, _samples(1000, frozen_at=500))
    assert not _any(out[:500]) and m.label == "frozen_sensor"


def test_thresholds_have_hysteresis():
    rule = dict(RULE, shift=[384, 64])
    # raised at a 1.5 sd mean shift, held while it stays above 0.25 sd, good again below
    m, out = _run(rule, _chain(_samples(400, offset=40), _samples(400, t0=4000, offset=10)))
    assert out[399] == 1 and _all(out[400:])
    m, out = _run(rule, _chain(_samples(400, offset=40), _samples(400, t0=4000, offset=0)))
    assert out[-1] == 0


def test_pipeline_shows_the_diagnosis_and_names_expected_and_actual():
    cfg = grid_cfg()
    cfg["rules"] = [dict(RULE)]
    d = Device(cfg)
    events = []
    res = None
    for ts, values in _samples(3000, ramp=20):
        res = d.process(ts, {"voltage": values["voltage"], "current": values["current"],
                             "temperature": 50, "humidity": 50})
        events += res["events"]
    events = [e for e in events if e["rule"] == "model"]
    assert [e["state"] for e in events] == ["raised"]
    assert events[0]["rule"] == "model" and events[0]["metric"] == "voltage"
    assert "expected" in events[0]["reason"] and "got" in events[0]["reason"]
    assert [d["name"] for d in res["diagnoses"] if d["confidence"] >= 0.5] == ["drift:voltage"]


def test_missing_values_give_no_opinion():
    m = model.Model(RULE, None)
    m.see({"current": None, "voltage": 24000})
    assert m.check(24000, 0, False) is None
    m.see({"current": 100})
    assert m.check(None, 10, False) is None


def test_a_model_rule_is_validated_with_paths():
    cfg = grid_cfg()
    bad = dict(RULE, w=[1, 2, 3], scale=7, inputs=[["nope", 1, 3, 0]], shift=[1, 5], sd=0, extra=1)
    cfg["rules"] = [bad]
    problems = config.validate(cfg)
    for want in ("rules[0].extra: unknown parameter", "rules[0].scale: must be 1, 10",
                 "rules[0].inputs[0]: must be [metric", "rules[0].w: must be 2 integer weights",
                 "rules[0].sd: must be an integer >= 1", "rules[0].shift: must be [on, off]"):
        assert any(p.startswith(want) for p in problems), (want, problems)
    cfg["rules"] = [dict(RULE, inputs=[["voltage", 1, 1, 0]])]
    assert any("is not another metric" in p for p in config.validate(cfg))
    cfg["rules"] = [dict(RULE)]
    assert config.validate(cfg) == []


def test_steps_round_half_up_alike_in_float32_and_float64():
    # the same integers on CPython, the unix port and the ESP32-like runtime (float32)
    assert [model.steps(x, 1) for x in (24012.49, 24012.5, 24012.51, -2.5, -2.51, -2.49, 0.5)] == \
        [24012, 24013, 24013, -2, -3, -2, 1]
    assert [model.steps(x, 100) for x in (45.37, 0.285, -12.34, 99.99, 31.05)] == [4537, 29, -1234, 9999, 3105]
