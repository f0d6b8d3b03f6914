import json

import edge
from _helpers import raises
from edge import shadow, config
from edge.pipeline import Device
from test_edge_fixtures import grid_cfg, sample
from edge.delta import apply_delta


def result_with_alert():
    d = Device(grid_cfg())
    return d.cfg, d.process(1700000000, sample(current=900, humidity=None))


def test_reported_state_is_flat_with_timestamp():
    cfg, res = result_with_alert()
    rep = shadow.reported_state(cfg, res, {"spool": {"backlog": 3, "dropped": 1}})
    assert rep["current"] == 900.0 and rep["voltage"] == 24000 and rep["humidity"] is None
    assert rep["timestamp"] == 1700000000
    assert rep["status"] == {"humidity": "no_data", "current": None, "voltage": None, "temperature": None}
    assert rep["alerts"] == [{"metric": "current", "rule": "rating", "severity": "critical", "since": 1700000000}]
    assert rep["config_version"] == 0 and rep["fw"] == edge.VERSION and rep["spool"]["backlog"] == 3


def test_a_recovered_read_is_cleared_in_the_shadow_as_aws_merges_it():
    # AWS merges reported objects key by key: apply each update the way it does
    def merge(state, patch):
        for k, v in patch.items():
            if v is None:
                state.pop(k, None)
            elif type(v) is dict and type(state.get(k)) is dict:
                merge(state[k], v)
            elif type(v) is dict:
                state[k] = {}
                merge(state[k], v)  # a new object is stored without its nulls
            else:
                state[k] = v
    d = Device(grid_cfg())
    shadow_state = {}
    for t, s in ((1, sample(humidity=None)), (2, sample(temperature=None)), (3, sample())):
        merge(shadow_state, shadow.reported_state(d.cfg, d.process(1700000000 + t, s)))
        if t == 2:
            assert shadow_state["status"] == {"temperature": "no_data"}  # humidity read again
    assert "status" not in shadow_state and shadow_state["humidity"] is not None


def test_trim_keeps_a_state_within_the_limits_whole():
    cfg, res = result_with_alert()
    rep = shadow.reported_state(cfg, res)
    whole = dict(rep)
    kept, dropped = shadow.trim(rep)
    assert dropped == 0 and kept == whole and kept is rep  # trimmed in place: no copy
    # json_size counts what the compact JSON text would hold, without making it
    assert shadow.json_size({"reported": rep}) == len(json.dumps({"reported": rep}, separators=(",", ":")))
    assert shadow.json_size({"a": [1, "b"]}) == 13


def test_trim_drops_optional_fields_on_purpose():
    cfg, res = result_with_alert()
    deep = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    big = {"notes": ["x" * 100] * 100}
    rep = shadow.reported_state(cfg, res, {"provenance": deep, "spool": big})
    doc, dropped = shadow.trim(rep)
    assert dropped == 2 and "provenance" not in doc and "spool" not in doc
    assert shadow.json_size({"reported": doc}) <= 8192
    assert doc["current"] == 900.0 and doc["timestamp"] == 1700000000
    assert shadow.depth(deep) == 6


def test_trim_refuses_metrics_that_alone_break_the_limit():
    rep = dict(("m%03d_%s" % (i, "x" * 60), 1) for i in range(120))  # 120 x 68 B: 8.2 KB of metrics
    rep["timestamp"] = 1700000000
    assert raises(ValueError, shadow.trim, rep)


def test_apply_delta_valid():
    cfg = config.load(grid_cfg())
    rules = grid_cfg()["rules"]
    rules[0]["max"] = 26000
    new, problems = apply_delta(cfg, {"state": {"rules": rules, "sku": {"ratings": {"current": 500}}},
                                             "version": 17, "timestamp": 1700000000})
    assert problems is None
    assert new["rules"][0]["max"] == 26000 and new["sku"] == {"name": "MV-600A", "ratings": {"current": 500}}
    assert new["version"] == 1 and cfg["version"] == 0 and cfg["rules"][0]["max"] == 25000


def test_apply_delta_rejects_everything_wrong_and_applies_nothing():
    cfg = config.load(grid_cfg())
    before = json.dumps(cfg)
    cases = [
        ({"state": {"rules": [{"metric": "voltage", "type": "range", "min": "low"}]}},
         ["rules[0].min: must be a number"]),
        ({"state": {"metrics": {"power": {"unit": "W"}}}},
         ["metrics.power: unknown metric (known: current, humidity, temperature, voltage)"]),
        ({"state": {"interval_s": "10", "metrics": {"current": {"calibration": [{"type": "foo"}]}}}},
         None),
        ({"state": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}, ["state: nested 7 levels deep, AWS allows 6"]),
        ({"state": {"wifi": {"ssid": "x" * 9000}}}, None),
        ({"state": {"thing": "other"}}, ["thing: set by the device, not by a delta"]),
        ({"nostate": 1}, ["state: the delta must hold a \"state\" object"]),
    ]
    for msg, want in cases:
        new, problems = apply_delta(cfg, msg)
        assert new is None and problems
        if want is not None:
            assert problems == want, problems
    _, p = apply_delta(cfg, cases[2][0])
    assert "interval_s: must be a number >= 1" in p
    assert any(x.startswith("metrics.current.calibration[0].type: unknown stage 'foo'") for x in p)
    _, p = apply_delta(cfg, cases[4][0])
    assert p[0].startswith("state: ") and "AWS allows 8192" in p[0]
    assert json.dumps(cfg) == before


def test_a_delta_outside_the_pipeline_is_checked_without_the_registry_checks():
    # interval_s, mqtt, ...: only edge.config's own checks run (edge.checks stays out of RAM), and
    # what they refuse is refused all the same
    import sys
    cfg = config.load(grid_cfg())
    sys.modules.pop("edge.checks", None)
    new, problems = apply_delta(cfg, {"state": {"interval_s": 20}, "version": 2})
    assert problems is None and new["interval_s"] == 20 and "edge.checks" not in sys.modules
    _, problems = apply_delta(cfg, {"state": {"interval_s": 0}, "version": 3})
    assert problems == ["interval_s: must be a number >= 1"]
    _, problems = apply_delta(cfg, {"state": {"rules": [{"metric": "voltage", "type": "nope"}]}, "version": 4})
    assert problems and "unknown rule 'nope'" in problems[0]
