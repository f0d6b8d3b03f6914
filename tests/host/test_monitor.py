"""`edgeshadow monitor`: the fleet model on its own, then against a real Mosquitto (mutual TLS) with
the local shadow service and paho publishers imitating devices."""
import io
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools.cloud import broker as brokerlib
from host_tools.cloud import monitor
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def reported(values, **extra):
    r = dict(values)
    r.update(extra)
    return json.dumps({"state": {"reported": r}, "version": 3, "timestamp": 1700000000}).encode()


# ---------------------------------------------------------------- the fleet model

def test_shadow_documents_build_the_device_view():
    clock = Clock()
    f = monitor.Fleet(units={"voltage": "V", "current": "A"}, clock=clock, stale_after_s=60)
    doc = {"previous": None, "current": {"state": {"reported": {
        "voltage": 24010.5, "current": 312.0, "timestamp": 1700000000, "config_version": 2, "fw": "0.3.0",
        "alerts": [{"metric": "current", "rule": "rating", "severity": "critical", "since": 1699999990},
                   {"metric": "voltage", "rule": "range", "severity": "warning", "since": 1699999995}],
        "diagnoses": [{"name": "overload", "confidence": 0.8}],
        "spool": {"backlog": 3, "dropped": 1}, "heap": {"size": 112000, "free": 30000, "min_free": 21000},
        "status": {"humidity": "disconnected"}}}}}
    assert f.handle("$aws/things/grid-sensor-001/shadow/update/documents", json.dumps(doc).encode()) == "grid-sensor-001"
    clock.t += 5
    snap = f.snapshot()["devices"]["grid-sensor-001"]
    assert snap["values"] == {"voltage": 24010.5, "current": 312.0}
    assert snap["units"] == {"voltage": "V", "current": "A"}
    assert [a["severity"] for a in snap["alerts"]] == ["critical", "warning"]  # by severity
    assert snap["diagnoses"] == [{"name": "overload", "confidence": 0.8}]
    assert snap["spool"] == {"backlog": 3, "dropped": 1}
    assert snap["heap"] == {"size": 112000, "free": 30000, "min_free": 21000}
    assert "heap" not in snap["values"]
    assert snap["status"] == {"humidity": "disconnected"}
    assert snap["connected"] is True and snap["last_seen_s"] == 5.0
    assert snap["fw"] == "0.3.0" and snap["config_version"] == 2
    clock.t += 100  # not heard for longer than stale_after_s, and it never said it was online
    assert f.snapshot()["devices"]["grid-sensor-001"]["connected"] is False


def test_partial_updates_merge_and_whole_documents_replace():
    f = monitor.Fleet(units={})
    f.handle("$aws/things/t1/shadow/update/accepted", reported({"voltage": 1.0, "current": 2.0}))
    f.handle("$aws/things/t1/shadow/update/accepted", reported({"current": 3.0}))
    assert f.snapshot()["devices"]["t1"]["values"] == {"voltage": 1.0, "current": 3.0}
    f.handle("$aws/things/t1/shadow/get/accepted", reported({"humidity": 40.0}))
    assert f.snapshot()["devices"]["t1"]["values"] == {"humidity": 40.0}
    # the firmware names every metric in status while a read fails (null: fine), and sends a
    # null status once none fails
    f.handle("$aws/things/t1/shadow/update/accepted",
             reported({"status": {"humidity": "crc", "voltage": None}}))
    assert f.snapshot()["devices"]["t1"]["status"] == {"humidity": "crc"}
    f.handle("$aws/things/t1/shadow/update/accepted", reported({"humidity": 41.0, "status": None}))
    assert f.snapshot()["devices"]["t1"]["status"] == {}
    # a desired-only document says nothing about the device
    assert f.handle("$aws/things/t2/shadow/update/accepted", b'{"state": {"desired": {"interval_s": 5}}}') is None
    assert "t2" not in f.snapshot()["devices"]


def test_alert_events_raise_and_clear_telemetry_and_status():
    f = monitor.Fleet(units={})
    raise_ev = {"metric": "voltage", "rule": "range", "severity": "critical", "state": "raised",
                "value": 100000.0, "since": 17, "reason": "above 25000"}
    f.handle("dt/t1/alerts", json.dumps(raise_ev).encode())
    f.handle("dt/t1/alerts", json.dumps(dict(raise_ev, metric="current", severity="warning")).encode())
    alerts = f.snapshot()["devices"]["t1"]["alerts"]
    assert [(a["metric"], a["severity"]) for a in alerts] == [("voltage", "critical"), ("current", "warning")]
    f.handle("dt/t1/alerts", json.dumps(dict(raise_ev, state="cleared")).encode())
    assert [a["metric"] for a in f.snapshot()["devices"]["t1"]["alerts"]] == ["current"]
    f.handle("dt/t1/telemetry", json.dumps({"readings": [{"ts": 1, "voltage": 24000.0},
                                                         {"ts": 2, "voltage": 24001.0, "current": 5.5}],
                                            "spool": {"backlog": 0, "dropped": 0}}).encode())
    snap = f.snapshot()["devices"]["t1"]
    assert snap["values"] == {"voltage": 24001.0, "current": 5.5} and snap["timestamp"] == 2
    # the firmware's batches: a list of {"seq", "ts", "v": values, "s": statuses of failed reads}
    f.handle("dt/t1/telemetry", json.dumps([{"seq": 7, "ts": 3, "v": {"voltage": 23990.0, "humidity": None},
                                             "s": {"humidity": "disconnected"}}]).encode())
    snap = f.snapshot()["devices"]["t1"]
    assert snap["values"] == {"voltage": 23990.0, "current": 5.5, "humidity": None}
    assert snap["status"] == {"humidity": "disconnected"} and snap["timestamp"] == 3
    f.handle("dt/t1/status", b'{"connected": false}')
    assert f.snapshot()["devices"]["t1"]["connected"] is False
    f.handle("dt/t1/status", b"online")
    assert f.snapshot()["devices"]["t1"]["connected"] is True


def test_malformed_messages_are_counted_not_fatal():
    f = monitor.Fleet(units={})
    assert f.handle("dt/t1/telemetry", b"\xff not json") is None
    assert f.handle("dt/t1/alerts", b"[1, 2]") is None
    assert f.handle("some/other/topic", b"{}") is None
    assert f.snapshot() == {"devices": {}}
    assert f.errors == ["dt/t1/telemetry: payload is not JSON", "dt/t1/alerts: alert event is not a JSON object"]


def test_render_lists_devices_values_and_alerts():
    from rich.console import Console
    f = monitor.Fleet(units={"voltage": "V"})
    f.handle("$aws/things/t1/shadow/update/documents", json.dumps({"current": {"state": {"reported": {
        "voltage": 24000.0, "alerts": [{"metric": "voltage", "rule": "range", "severity": "critical"}],
        "spool": {"backlog": 7, "dropped": 2}, "status": {"humidity": "crc", "voltage": None}}}}}).encode())
    buf = io.StringIO()
    Console(file=buf, width=160).print(monitor.render(f.snapshot()))
    text = buf.getvalue()
    for want in ("t1", "24000 V", "critical: voltage range", "backlog 7", "dropped 2", "connected",
                 "humidity: no value (crc)"):   # a failed read has no value, only its status
        assert want in text, want


def _fleet_of_three(current_2, now):
    f = monitor.Fleet(units={"voltage": "V", "current": "A", "temperature": "°C", "humidity": "%RH"})
    for i, (v, c) in enumerate(((24012.3, 12.3), (23998.1, current_2), (24100.0, 8.0)), 1):
        alerts = [{"metric": "current", "rule": "range", "severity": "critical", "since": int(now) - 35}] if i == 2 else []
        f.handle(f"$aws/things/grid-sensor-00{i}/shadow/update/documents", json.dumps({"current": {"state": {
            "reported": {"voltage": v, "current": c, "temperature": 41.52, "humidity": 55.1, "alerts": alerts,
                         "diagnoses": [{"name": "overload", "confidence": 0.9}] if i == 2 else []}}}}).encode())
    return f


def test_compact_view_fits_80x24_one_line_per_device_with_stable_columns():
    from rich.console import Console
    from host_tools.cloud.monitor_view import CompactView
    now = 1_790_000_000
    f = _fleet_of_three(262.04, now)
    # the alert event says the value and the limit; the shadow's list keeps them for the same alert
    f.handle("dt/grid-sensor-002/alerts", json.dumps({
        "metric": "current", "rule": "range", "severity": "critical", "state": "raised", "value": 262.04,
        "since": now - 35, "reason": "above max 250"}).encode())
    f.handle("$aws/things/grid-sensor-002/shadow/update/accepted", json.dumps({"state": {"reported": {
        "alerts": [{"metric": "current", "rule": "range", "severity": "critical", "since": now - 35}]}}}).encode())
    view = CompactView(80, 24)
    buf = io.StringIO()
    Console(file=buf, width=80, height=24).print(view.render(f.snapshot(), "127.0.0.1:1 (TLS)", now=now))
    lines = buf.getvalue().rstrip("\n").splitlines()
    assert len(lines) <= 24 and all(len(l) <= 80 for l in lines), lines
    for i in (1, 2, 3):  # name, state, age and the key values on the device's one line
        [row] = [l for l in lines if l.startswith(f"grid-sensor-00{i} ")]
        assert "online" in row and "V" in row and "A" in row and "°C" in row, row
    assert "  grid-sensor-002 crit current 262.0A (above max 250) 35s" in lines, lines
    header = next(l for l in lines if l.startswith("device"))
    # a refresh with narrower values keeps every column where it was
    f2 = _fleet_of_three(2.0, now)
    again = [t for t, _ in view.lines(f2.snapshot(), "127.0.0.1:1 (TLS)", now=now)]
    assert header in again


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(EdgeshadowError, match="no broker state file"):
        monitor.local_settings(tmp_path / "broker.json")
    (tmp_path / "broker.json").write_text("{not json")
    with pytest.raises(EdgeshadowError, match="not valid JSON"):
        monitor.local_settings(tmp_path / "broker.json")
    (tmp_path / "broker.json").write_text(json.dumps({"host": "127.0.0.1", "port": 1, "ca": str(tmp_path / "nope.crt")}))
    with pytest.raises(EdgeshadowError, match="broker CA certificate .*nope.crt does not exist"):
        monitor.local_settings(tmp_path / "broker.json")
    with pytest.raises(EdgeshadowError, match="--endpoint"):
        monitor.aws_settings(None, None, None, None)
    with pytest.raises(EdgeshadowError, match="client certificate"):
        monitor.aws_settings("x-ats.iot.eu-west-1.amazonaws.com", tmp_path / "c.pem", tmp_path / "k.pem",
                             tmp_path / "broker.json")


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "host_tools", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_argument_errors():
    r = _cli("monitor", "--json")
    assert r.returncode == 1 and "--json prints one snapshot: use it with --once" in r.stderr
    r = _cli("monitor", "--aws", "--once")
    assert r.returncode == 1 and "--aws needs --endpoint" in r.stderr
    r = _cli("monitor", "--local", "--aws")
    assert r.returncode == 2 and "not allowed with" in r.stderr
    r = _cli("monitor", "--help")
    assert r.returncode == 0 and "--once" in r.stdout and "Exit codes" in r.stdout


# ---------------------------------------------------------------- against a real broker

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("monitor")
    with brokerlib.local_stack(workdir=work / "broker", ca_dir=work / "ca") as (broker, service, state):
        yield broker, state


class FakeDevice:
    """A paho client with a device certificate (CN = thing), publishing like the firmware."""

    def __init__(self, broker, thing, will=False):
        crt, key = broker.client_cert(thing)
        self.thing = thing
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=thing)
        ctx = ssl.create_default_context(cafile=str(broker.ca_cert))
        ctx.load_cert_chain(str(crt), str(key))
        self.client.tls_set_context(ctx)
        if will:
            self.client.will_set(f"dt/{thing}/status", b'{"connected": false}', qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.thread = None

    def publish_state(self, values, alerts=(), spool=None):
        r = dict(values, timestamp=int(time.time()), alerts=list(alerts), diagnoses=[], fw="0.1.0",
                 config_version=0, spool=spool or {"backlog": 0, "dropped": 0})
        self.client.publish(f"$aws/things/{self.thing}/shadow/update",
                            json.dumps({"state": {"reported": r}, "clientToken": "t"}), qos=1)

    def keep_publishing(self, values, **kw):
        def loop():
            while not self.stop.is_set():
                self.publish_state(values, **kw)
                self.stop.wait(0.3)
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def close(self, abrupt=False):
        self.stop.set()
        if self.thread:
            self.thread.join()
        if abrupt:
            self.client.socket().close()  # no DISCONNECT: the broker sends the last will
            self.client.loop_stop()
        else:
            self.client.disconnect()
            self.client.loop_stop()


def test_once_json_lists_every_device_with_values_and_alerts(stack):
    broker, state = stack
    d1, d2 = FakeDevice(broker, "grid-sensor-001"), FakeDevice(broker, "grid-sensor-002")
    try:
        d1.keep_publishing({"voltage": 24000.0, "current": 310.0, "temperature": 41.5, "humidity": 55.0})
        d2.keep_publishing({"voltage": 100000.0, "current": 20.0},
                           alerts=[{"metric": "voltage", "rule": "range", "severity": "critical", "since": 1}],
                           spool={"backlog": 12, "dropped": 3})
        r = _cli("monitor", "--local", "--broker-state", str(state), "--once", "--json", "--expect", "2",
                 "--seconds", "30")
    finally:
        d1.close()
        d2.close()
    assert r.returncode == 0, r.stderr
    devices = json.loads(r.stdout)["devices"]
    assert sorted(devices) == ["grid-sensor-001", "grid-sensor-002"]
    a, b = devices["grid-sensor-001"], devices["grid-sensor-002"]
    assert a["values"]["voltage"] == 24000.0 and a["units"]["voltage"] == "V" and a["alerts"] == []
    assert a["connected"] is True and 0 <= a["last_seen_s"] < 30
    assert b["alerts"] == [{"metric": "voltage", "rule": "range", "severity": "critical", "since": 1}]
    assert b["spool"] == {"backlog": 12, "dropped": 3}


def test_once_without_devices_exits_1(stack):
    broker, state = stack
    r = _cli("monitor", "--broker-state", str(state), "--once", "--json", "--seconds", "1")
    assert r.returncode == 1 and "no device heard" in r.stderr
    assert json.loads(r.stdout) == {"devices": {}}


def test_unreachable_broker_is_a_clear_error(stack):
    broker, state = stack
    info = json.loads(Path(state).read_text())
    port = brokerlib.free_port()
    r = _cli("monitor", "--host", "127.0.0.1", "--port", str(port), "--ca", info["ca"],
             "--cert", info["monitor_cert"], "--key", info["monitor_key"], "--once", "--seconds", "1")
    assert r.returncode == 1 and f"cannot connect to the broker at 127.0.0.1:{port}" in r.stderr


def test_live_view_updates_and_last_will_marks_offline(stack):
    from rich.console import Console
    broker, state = stack
    settings = monitor.local_settings(state)
    fleet = monitor.Fleet(stale_after_s=600)
    buf = io.StringIO()
    dev = FakeDevice(broker, "grid-sensor-003", will=True)
    try:
        dev.keep_publishing({"voltage": 23950.0})

        def heard(f):
            return f.snapshot()["devices"].get("grid-sensor-003", {}).get("values")

        monitor.watch_live(settings, seconds=30, console=Console(file=buf, width=150), fleet=fleet, until=heard)
        assert heard(fleet) == {"voltage": 23950.0}
        line = next(l for l in buf.getvalue().splitlines() if "grid-sensor-003" in l)
        assert "online" in line and "23950V" in line, buf.getvalue()  # one line per device
        # the device drops off without a DISCONNECT: Mosquitto publishes its last will
        with monitor.Subscriber(settings, fleet):
            dev.close(abrupt=True)
            deadline = time.monotonic() + 20
            while fleet.snapshot()["devices"]["grid-sensor-003"]["connected"] and time.monotonic() < deadline:
                fleet.changed.wait(0.2)
                fleet.changed.clear()
        assert fleet.snapshot()["devices"]["grid-sensor-003"]["connected"] is False
    finally:
        dev.close()
