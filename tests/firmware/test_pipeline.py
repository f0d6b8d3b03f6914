from _helpers import raises
from edge.pipeline import Device
from edge.config import ConfigError
from test_edge_fixtures import grid_cfg, sample


def states(res):
    return sorted((a["metric"], a["rule"], a["state"]) for a in res["alerts"])


def test_result_shape_and_values():
    d = Device(grid_cfg())
    r = d.process(1700000000, sample())
    assert sorted(r) == ["alerts", "diagnoses", "events", "status", "thing", "ts", "values"]
    assert r["thing"] == "grid-sensor-001" and r["ts"] == 1700000000
    assert r["values"] == {"voltage": 24000, "current": 300.0, "temperature": 60, "humidity": 50}
    assert r["status"] == {"voltage": "ok", "current": "ok", "temperature": "ok", "humidity": "ok"}
    assert r["alerts"] == [] and r["events"] == [] and r["diagnoses"] == []


def test_alert_lifecycle_and_events():
    d = Device(grid_cfg())
    r1 = d.process(10, sample(voltage=100000))
    assert states(r1) == [("voltage", "range", "raised")]
    assert r1["events"][0]["reason"] == "above max 25000" and r1["events"][0]["since"] == 10
    r2 = d.process(20, sample(voltage=100000))
    assert states(r2) == [("voltage", "range", "active")] and r2["events"] == []
    r3 = d.process(30, sample())
    assert states(r3) == [("voltage", "range", "cleared")] and r3["events"][0]["state"] == "cleared"
    assert d.process(40, sample())["alerts"] == []


def test_failed_reads_are_none_with_status_and_never_stop_the_loop():
    c = grid_cfg()
    c["rules"].append({"metric": "humidity", "type": "sensor_fault", "samples": 2, "severity": "warning"})
    c["metrics"]["temperature"]["calibration"] = [{"type": "filter_out", "value": -127}]
    d = Device(c)
    r = d.process(1, sample(humidity=None, temperature=-127), {"humidity": "timeout"})
    assert r["values"]["humidity"] is None and r["status"]["humidity"] == "timeout"
    assert r["values"]["temperature"] is None and r["status"]["temperature"] == "out_of_physical_range"
    assert states(r) == []
    r = d.process(2, {"voltage": 24000})
    assert r["status"]["current"] == "no_data"
    assert ("humidity", "sensor_fault", "raised") in states(r)


def test_persistent_anomaly_stays_flagged_every_sample():
    d = Device(grid_cfg())
    for i in range(100):  # learn a tight baseline: 300 +- 5 A
        d.process(i * 10, sample(current=295 + (i % 11)))
    for i in range(1000):  # 400 A: within the rating, far outside the frozen baseline
        r = d.process(1000 + i * 10, sample(current=400))
        assert states(r) == [("current", "zscore", "raised" if i == 0 else "active")], (i, states(r))
    for i in range(1000):  # 1000 A on the 600 A SKU: rating and zscore, every sample
        r = d.process(20000 + i * 10, sample(current=1000))
        s = states(r)
        assert ("current", "rating", "raised" if i == 0 else "active") in s and \
            ("current", "zscore", "active") in s, (i, s)


def test_sku_rating():
    for rated, flagged in ((200, True), (500, False)):
        c = grid_cfg()
        c["sku"] = {"name": "MV-%dA" % rated, "ratings": {"current": rated}}
        r = Device(c).process(1, sample(current=300))
        assert (("current", "rating", "raised") in states(r)) is flagged


def test_relearn_restarts_learning_and_clears():
    c = grid_cfg()
    c["rules"][4]["learn"] = 10
    d = Device(c)
    for i in range(10):
        d.process(i, sample(current=300 + i % 3))
    assert states(d.process(10, sample(current=350))) == [("current", "zscore", "raised")]
    assert d.relearn("voltage") == 0 and d.relearn() == 1
    r = d.process(11, sample(current=350))
    assert states(r) == [("current", "zscore", "cleared")] and r["events"][0]["state"] == "cleared"
    for i in range(10):  # learning again: no opinion
        assert d.process(12 + i, sample(current=350 + i % 3))["alerts"] == []
    assert d.process(30, sample(current=351))["alerts"] == []


def test_calibrate_without_detection_and_diagnoses():
    c = grid_cfg()
    c["metrics"]["current"]["calibration"] = [{"type": "linear", "gain": 2.0, "offset": 1.0}]
    d = Device(c)
    assert d.calibrate("current", 10) == 21.0 and d.calibrate("current", None) is None
    r = d.process(1, sample(voltage=20000))
    assert r["diagnoses"] == [{"name": "sag", "confidence": 1.0}]


def test_invalid_config_raises():
    c = grid_cfg()
    c["rules"][1]["max_pct"] = "lots"
    e = raises(ConfigError, Device, c)
    assert e.problems == ["rules[1].max_pct: must be a number >= 0"]


def test_a_replacing_device_takes_over_active_alerts():
    import json
    from edge.pipeline import Device
    cfg = {"thing": "t1", "metrics": {"voltage": {"unit": "V"}, "current": {"unit": "A"}},
           "rules": [{"metric": "voltage", "type": "range", "min": 30000, "max": 40000},
                     {"metric": "current", "type": "range", "min": 0, "max": 10}]}
    old = Device(cfg)
    r = old.process(1, {"voltage": 24000.0, "current": 50.0})
    assert sorted(e["metric"] for e in r["events"]) == ["current", "voltage"]
    new_cfg = json.loads(json.dumps(cfg))
    new_cfg["rules"] = [{"metric": "voltage", "type": "range", "min": 23000, "max": 25000}]
    new = Device(new_cfg)
    gone = new.adopt(old)
    # the current rule was removed: its alert clears now; the voltage alert clears at the next sample
    assert [(e["metric"], e["state"], e["reason"]) for e in gone] == [("current", "cleared", "rule removed")]
    r = new.process(2, {"voltage": 24000.0, "current": 50.0})
    assert [(e["metric"], e["state"]) for e in r["events"]] == [("voltage", "cleared")]
