# Hostile deltas that used to validate and then break the board (issue 13): each is now rejected
# whole, naming the field, by the same check on the device (edge.delta.apply_delta ->
# edge.config.validate -> edge.bounds) and the host; calibration results stay finite.
import json

from edge import config, delta, schema
from edge.config import load
from edge.pipeline import Device
from test_edge_fixtures import grid_cfg, NOMINAL

HOSTILE = [  # (delta state, the field the problem must name)
    ({"interval_s": 1e306}, "interval_s"),
    ({"interval_s": 86401}, "interval_s"),
    ({"watchdog_s": 172806}, "watchdog_s"),
    ({"watchdog_s": 1e306}, "watchdog_s"),
    ({"spool": {"max_bytes": 100}}, "spool.max_bytes"),
    ({"spool": {"max_bytes": 10 ** 12}}, "spool.max_bytes"),
    ({"spool": {"dir": "/config.json"}}, "spool.dir"),
    ({"spool": {"dir": "/"}}, "spool.dir"),
    ({"spool": {"dir": "/certs"}}, "spool.dir"),
    ({"spool": {"dir": "spool"}}, "spool.dir"),
    ({"spool": {"dir": "/a/../edge"}}, "spool.dir"),
    ({"spool": {"dir": "/edge/x"}}, "spool.dir"),
    ({"spool": {"dir": "/store"}}, "spool.dir"),      # the firmware's own folders
    ({"spool": {"dir": "/update"}}, "spool.dir"),     # the OTA slots (otaboot.DIR)
    ({"mqtt": {"telemetry_prefix": "#"}}, "mqtt.telemetry_prefix"),
    ({"mqtt": {"telemetry_prefix": "a/+/b"}}, "mqtt.telemetry_prefix"),
    ({"mqtt": {"telemetry_prefix": "$aws"}}, "mqtt.telemetry_prefix"),
    ({"mqtt": {"telemetry_prefix": ""}}, "mqtt.telemetry_prefix"),
    ({"mqtt": {"telemetry_prefix": "a/b/c/d"}}, "mqtt.telemetry_prefix"),
    ({"mqtt": {"endpoint": "bad host/x"}}, "mqtt.endpoint"),
    ({"mqtt": {"endpoint": "a..b"}}, "mqtt.endpoint"),
    ({"mqtt": {"batch_max": 10 ** 6}}, "mqtt.batch_max"),
    ({"mqtt": {"cert": "device.der"}}, "mqtt.cert"),
    ({"ntp": {"host": "#"}}, "ntp.host"),
    ({"wifi": {"ssid": "s" * 33}}, "wifi.ssid"),   # (the 7,000 of issue 13: the soak sends it to boards)
    ({"wifi": {"password": "p" * 65}}, "wifi.password"),
    ({"metrics": {"current": {"calibration": [{"type": "round", "decimals": 400}]}}},
     "metrics.current.calibration[0].decimals"),
    ({"metrics": {"current": {"calibration": [{"type": "multiply", "value": 1e308},
                                              {"type": "multiply", "value": 1e308}]}}},
     "metrics.current.calibration[0].value"),
    ({"metrics": {"current": {"calibration": [{"type": "mean", "window": 100000}]}}},
     "metrics.current.calibration[0].window"),
    ({"metrics": {"current": {"calibration": [{"type": "polynomial", "coefficients": [0, 1, 1e300]}]}}},
     "metrics.current.calibration[0].coefficients"),
    ({"metrics": {"current": {"report": [{"type": "heartbeat", "heartbeat_s": 1e300}]}}},
     "metrics.current.report[0].heartbeat_s"),
    ({"rules": [{"metric": "voltage", "type": "range", "min": -1e300, "max": 1}]}, "rules[0].min"),
    ({"rules": [{"metric": "voltage", "type": "stuck", "samples": 10 ** 9}]}, "rules[0].samples"),
    ({"rules": [{"metric": "voltage", "type": "range", "max": 1, "debounce": 10 ** 9}]}, "rules[0].debounce"),
    ({"sku": {"ratings": {"current": 1e300}}}, "sku.ratings.current"),
]


def test_every_hostile_delta_is_rejected_naming_its_field():
    cfg = load(grid_cfg())
    for state, field in HOSTILE:
        new, problems = delta.apply_delta(cfg, {"state": state, "version": 5})
        assert new is None, (state, field)
        assert any(p.startswith(field + ":") for p in problems), (field, problems)


def test_the_limits_themselves_and_the_reference_values_are_accepted():
    cfg = load(grid_cfg())
    for state in ({"interval_s": 86400, "watchdog_s": 0}, {"interval_s": 86400, "watchdog_s": 172805},
                  {"interval_s": 1}, {"watchdog_s": 3600}, {"watchdog_s": 0},
                  {"spool": {"max_bytes": 4096, "dir": "/data/spool"}}, {"spool": {"max_bytes": 1048576}},
                  {"mqtt": {"telemetry_prefix": "site-1/dt", "endpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}},
                  {"mqtt": {"endpoint": "127.0.0.1", "batch_max": 100}}, {"wifi": {"ssid": "s" * 32, "password": ""}},
                  {"metrics": {"current": {"calibration": [{"type": "round", "decimals": 6}]}}}):
        new, problems = delta.apply_delta(cfg, {"state": state, "version": 5})
        assert problems is None, (state, problems)


def test_every_number_of_the_defaults_is_bounded():
    # each numeric default set absurdly high is refused naming its path: nothing left unbounded
    cfg = load(grid_cfg())
    paths = []
    for k, v in config.DEFAULTS.items():
        if type(v) is dict:
            paths += ["%s.%s" % (k, kk) for kk, vv in v.items() if type(vv) in (int, float) and type(vv) is not bool]
        elif type(v) in (int, float) and type(v) is not bool:
            paths.append(k)
    assert "interval_s" in paths and "spool.max_bytes" in paths and "mqtt.port" in paths
    for path in paths:
        if path == "version":
            continue  # set by the device, never by a delta
        sec, _, key = path.partition(".")
        state = {sec: {key: 1e300}} if key else {sec: 1e300}
        problems = delta.apply_delta(cfg, {"state": state, "version": 5})[1]
        assert problems and any(p.startswith(path + ":") for p in problems), (path, problems)


def test_bounds_are_data_shared_with_the_host():
    assert config.BOUNDS["spool.dir"] == "D" and config.string_ok("D", "/spool")
    assert not config.string_ok("D", "/certs/x") and not config.string_ok("D", "/config.json")
    assert not config.string_ok("P", "dt/#") and config.string_ok("P", "dt")
    assert config.string_ok("H", "127.0.0.1") and not config.string_ok("H", "-a.b")
    assert not config.string_ok("H", "a..b") and config.string_ok("F", "/certs/device.der")
    assert schema.LIMITS["decimals"] == 6 and schema.MAX_ABS == 1e9


def test_calibration_that_overflows_gives_no_value_not_inf():
    c = grid_cfg()
    c["metrics"]["current"]["calibration"] = [{"type": "multiply", "value": 1e9},
                                              {"type": "multiply", "value": 1e9},
                                              {"type": "round", "decimals": 2}]
    d = Device(config.load(c))
    r = d.process(1000, dict(NOMINAL))
    assert r["values"]["current"] is None
    assert r["status"]["current"] == "out_of_physical_range"
    assert r["values"]["voltage"] == NOMINAL["voltage"]


def test_text_a_board_cannot_keep_is_named():
    from edge.text import bad_text
    assert bad_text(json.loads('{"wifi": {"ssid": "a\\ud83d"}}'), "") == ".wifi.ssid"
    assert bad_text(json.loads('{"k\\udc00": 1}'), "") == ""
    assert bad_text({"rules": [{"name": "ok \u00e9"}]}, "") is None
