"""The whole firmware (app.py) on a virtual board against the real local broker and shadow service:
readings, shadow reports and alert events on the right topics; desired-state deltas applied,
persisted and cleared, or rejected whole with the problems reported."""
import json
import time

import pytest

from _broker_fixtures import connected_board, local_broker  # noqa: F401  (module-scoped broker + shadow service)
from host_tools.device.link import BoardLink
from host_tools.cloud.shadow_api import LocalShadow

THING = "grid-e2e-001"
INTERVAL_S = 2


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def board(local_broker, tmp_path_factory):
    with connected_board(local_broker, tmp_path_factory.mktemp("e2e"), THING, INTERVAL_S) as vb:
        yield vb


@pytest.fixture
def shadow(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as s:
        yield s


def reported(shadow):
    return shadow.get(THING).get("state", {}).get("reported", {})


def test_readings_and_shadow_reports_arrive_on_their_topics(board, local_broker, shadow):
    with local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe(f"dt/{THING}/telemetry", f"$aws/things/{THING}/shadow/update/accepted")
        tel = mon.wait_for(lambda m: m.topic == f"dt/{THING}/telemetry", timeout=30).json()
        assert isinstance(tel, list) and tel
        r = tel[0]
        assert type(r["seq"]) is int and type(r["ts"]) is int  # whole unix seconds, on every port
        assert board.started_at <= r["ts"] <= time.time()
        assert set(r["v"]) == {"voltage", "current", "temperature", "humidity"}
        acc = mon.wait_for(lambda m: m.topic.endswith("/update/accepted"), timeout=30).json()
        rep = acc["state"]["reported"]
        # flat numbers beside the device's timestamp, as AWS IoT rules expect
        assert isinstance(rep["voltage"], (int, float)) and 23000 <= rep["voltage"] <= 25000
        assert isinstance(rep["timestamp"], int)
        assert rep["fw"] and rep["spool"]["dropped"] == 0
    # the config's units, for the monitor and cloud consumers: the shadow keeps them, so they are
    # sent after a connect and a config change, not in every report
    assert reported(shadow)["units"] == {"voltage": "V", "current": "A", "temperature": "C", "humidity": "%"}
    with local_broker.probe("edgeshadow-monitor") as mon:  # retained: a late subscriber sees it
        mon.subscribe(f"dt/{THING}/status")
        assert mon.wait_for(lambda m: m.topic == f"dt/{THING}/status", timeout=10).json() == {"connected": True}


def test_interval_change_is_applied_persisted_and_clears_the_delta(board, shadow):
    flash_cfg = board.flash_dir / "config.json"
    version = json.loads(flash_cfg.read_text()).get("version", 0)
    shadow.set_desired(THING, {"interval_s": 3})
    # a delta is applied when it arrives, not at the next sample: a deadline of a few intervals
    wait_until(lambda: reported(shadow).get("interval_s") == 3, INTERVAL_S + 15, "interval_s 3 reported")
    state = shadow.get(THING)["state"]
    assert "delta" not in state, state
    saved = json.loads(flash_cfg.read_text())
    assert saved["interval_s"] == 3 and saved["version"] == version + 1
    # survives a restart: the firmware boots with the new interval
    mark = len(board.log())
    with BoardLink(board.port) as link:
        link.soft_reset()
    board.wait_for_log("interval 3 s", timeout=30, start=mark)


def test_malformed_deltas_are_rejected_whole_and_reported(board, shadow):
    flash_cfg = board.flash_dir / "config.json"
    before = flash_cfg.read_bytes()
    shadow.set_desired(THING, {"interval_s": "fast"})
    err = wait_until(lambda: reported(shadow).get("config_error"), 15, "config_error reported")
    assert any(p.startswith("interval_s:") for p in err["problems"]), err
    shadow.set_desired(THING, {"interval_s": None, "metrics": {"nope": {"unit": "V"}}})
    wait_until(lambda: any("metrics.nope" in p for p in
                           (reported(shadow).get("config_error") or {}).get("problems", [])),
               15, "unknown metric reported")
    assert flash_cfg.read_bytes() == before  # nothing applied
    shadow.set_desired(THING, {"metrics": None})


def test_alert_events_go_out_at_once(board, shadow, local_broker):
    with local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe(f"dt/{THING}/alerts", f"dt/{THING}/telemetry")
        cfg = json.loads((board.flash_dir / "config.json").read_text())
        rules = [dict(r) for r in cfg["rules"]]
        for r in rules:
            if r["metric"] == "voltage" and r["type"] == "range":
                r["min"], r["max"] = 30000, 40000  # every nominal sample is now below the minimum
        shadow.set_desired(THING, {"rules": rules})
        msg = mon.wait_for(lambda m: m.topic.endswith("/alerts") and m.json().get("metric") == "voltage",
                           timeout=20)
        event = msg.json()
        assert event["rule"] == "range" and event["state"] == "raised"
        assert event["thing"] == THING and event["severity"] == "critical"
        assert isinstance(event["seq"], int)
        # the reading that raised it was spooled just before it, with the same timestamp
        # (Unix seconds, though the board's clock counts from 2000); readings go out in seq
        # order, so once a later one arrived, it has too
        mon.wait_for(lambda m: m.topic.endswith("/telemetry") and
                     any(r["seq"] > event["seq"] for r in m.json()), timeout=20)
        readings = [r for m in list(mon.messages) if m.topic.endswith("/telemetry") for r in m.json()]
        r = max((r for r in readings if r["seq"] < event["seq"]), key=lambda r: r["seq"])
        assert r["ts"] == event["ts"] and r["v"]["voltage"] < 30000, (r, event)
        assert board.started_at <= event["ts"] <= time.time()
