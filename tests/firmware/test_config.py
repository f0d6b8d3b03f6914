from _helpers import raises
from edge import config
from edge.config import ConfigError
from test_edge_fixtures import grid_cfg


def test_issue_config_is_accepted_exactly_as_written():
    cfg = config.load(grid_cfg())
    assert cfg["thing"] == "grid-sensor-001"
    assert cfg["mqtt"]["port"] == 8883 and cfg["watchdog_s"] == 45 and cfg["version"] == 0
    assert config.validate(grid_cfg()) == []


def test_full_design_shape_is_accepted():
    c = grid_cfg()
    c.update({"version": 3, "board": "sim", "diagnoses": [],
              "mqtt": {"endpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "port": 8883, "keepalive_s": 60,
                       "clean_session": False, "telemetry_prefix": "dt", "batch_max": 20,
                       "ca": "/certs/root-ca.der", "cert": "/certs/device.der", "key": "/certs/device.key.der"},
              "wifi": {"ssid": "grid", "password": "pw"}, "spool": {"max_bytes": 32768, "dir": "/spool"},
              "ntp": {"host": "time.example"}, "watchdog_s": 60})
    m = c["metrics"]["current"]
    m["sensor"] = {"driver": "ac_rms", "pin": 34, "whatever": [1, 2]}
    m["report"] = [{"type": "delta", "deadband": 5, "heartbeat_s": 300}, {"type": "throttle", "throttle_s": 10}]
    m["provenance"] = {"fitted": "2026-11-01", "points": 5}
    assert config.validate(c) == []


def test_layers_builtin_then_board_then_device():
    board = {"mqtt": {"port": 8884, "keepalive_s": 120}, "watchdog_s": 30}
    dev = grid_cfg()
    dev["mqtt"] = {"keepalive_s": 90}
    cfg = config.load(dev, board)
    assert cfg["mqtt"]["port"] == 8884          # board over built-in
    assert cfg["mqtt"]["keepalive_s"] == 90     # device over board
    assert cfg["mqtt"]["telemetry_prefix"] == "dt"  # built-in kept
    assert cfg["watchdog_s"] == 30


def test_every_problem_is_reported_with_its_path():
    c = grid_cfg()
    c["rules"][2]["min"] = "thirty"
    c["rules"][0]["severity"] = "panic"
    c["rules"][4]["learn"] = 0
    c["metrics"]["current"]["calibration"] = [{"type": "linear", "gain": 1}, {"type": "foo"}]
    c["metrics"]["voltage"]["report"] = [{"type": "delta"}]
    c["metrics"]["humidity"]["sensor"] = {"pin": 3}
    c["colour"] = "blue"
    c["mqtt"] = {"port": 0}
    e = raises(ConfigError, config.load, c)
    p = e.problems
    for want in ["rules[2].min: must be a number",
                 "rules[0].severity: must be one of info, warning, critical",
                 "rules[4].learn: must be an integer >= 1",
                 "metrics.current.calibration[1].type: unknown stage 'foo' (known: ",
                 "metrics.voltage.report[0].deadband: required",
                 "metrics.humidity.sensor: must be an object with a string \"driver\"",
                 "colour: unknown key",
                 "mqtt.port: must be an integer 1..65535"]:
        assert any(x.startswith(want) for x in p), (want, p)
    assert len(p) == 8, p
    assert "rules[2].min: must be a number" in str(e)


def test_rules_are_checked_against_metrics_and_sku():
    c = grid_cfg()
    c["rules"].append({"metric": "power", "type": "range", "max": 1})
    c["rules"].append({"metric": "voltage", "type": "rating", "max_pct": 110})
    c["rules"].append({"metric": "voltage", "type": "range", "min": 5, "max": 1})
    c["rules"].append({"metric": "voltage", "type": "bogus"})
    c["rules"].append({"metric": "voltage", "type": "range"})
    p = config.validate(c)
    assert any(x.startswith("rules[5].metric: 'power' is not a metric") for x in p), p
    assert "rules[6]: a rating rule needs sku.ratings.voltage (the rated value, > 0)" in p
    assert "rules[7].min: must be less than max" in p
    assert any(x.startswith("rules[8].type: unknown rule 'bogus'") for x in p)
    assert "rules[9]: give min, max or both" in p
    # rules[7] repeats voltage/range: a name tells two range rules of one metric apart
    assert any(x.startswith("rules[7].name: rules[0] already is voltage/range") for x in p)


def test_missing_required_and_bad_names():
    p = config.validate({"metrics": {"timestamp": {}, "a b": {}}, "thing": "x y"})
    assert "thing: must be 1 to 128 characters of A-Z a-z 0-9 _ : -" in p
    assert any(x.startswith("metrics.timestamp: metric names") for x in p)
    assert any(x.startswith("metrics.a b: metric names") for x in p)
    assert config.validate({"thing": "t"}) == ["metrics: required"]
    assert raises(ConfigError, config.load, [1]).problems == ["(config): must be a JSON object"]


def test_booleans_are_not_numbers():
    c = grid_cfg()
    c["rules"][0]["max"] = True
    c["interval_s"] = 0
    p = config.validate(c)
    assert "rules[0].max: must be a number" in p
    assert "interval_s: must be a number >= 1" in p


def test_load_does_not_change_its_inputs():
    c = grid_cfg()
    board = {"mqtt": {"port": 1}}
    config.load(c, board)
    assert "mqtt" not in c and board == {"mqtt": {"port": 1}}


def test_a_watchdog_shorter_than_a_handshake_or_a_late_sample_is_refused():
    base = {"thing": "t-1", "metrics": {"v": {}}}
    for w, interval, ok in ((1, 10, False), (29, 5, False), (30, 5, True), (44, 20, False),
                            (45, 20, True), (0, 10, True), (60, 10, True)):
        cfg = dict(base, watchdog_s=w, interval_s=interval)
        p = config.validate(config.merge(config.DEFAULTS, cfg))
        assert (not [x for x in p if x.startswith("watchdog_s")]) == ok, (w, interval, p)
    p = config.validate(config.merge(config.DEFAULTS, dict(base, watchdog_s=1)))
    assert p == ["watchdog_s: 1 s is shorter than a TLS handshake or a late sample can take: use 0 "
                 "(off) or at least 30 (max(30, 2 x interval_s + 5))"]
    # left to the default, it follows the interval
    assert config.load(dict(base, interval_s=60))["watchdog_s"] == 125


def test_a_watchdog_of_1_s_in_a_delta_is_rejected_with_the_reason():
    from edge.delta import apply_delta
    cfg = config.load({"thing": "t-1", "metrics": {"v": {}}})
    new, problems = apply_delta(cfg, {"state": {"watchdog_s": 1}, "version": 3})
    assert new is None and problems and problems[0].startswith("watchdog_s: 1 s is shorter than a TLS handshake")
