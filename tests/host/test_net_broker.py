"""The firmware's network layer inside the real MicroPython unix port against real Mosquitto over
mutual TLS (host_tools.cloud.broker + the local shadow service), checked by a paho-mqtt subscriber and by
the bytes on the wire (a relay between the board and the broker)."""
import datetime
import json

import pytest

from _broker_fixtures import local_broker  # noqa: F401  (fixture)
from _net_fixtures import MpyClient, Relay, device_files
from host_tools.cloud import certs

THING = "net-dev-001"


@pytest.fixture
def relay(local_broker):
    r = Relay(local_broker.host, local_broker.port)
    try:
        yield r
    finally:
        r.close()


def job(files, relay, **kw):
    j = {"thing": THING, "host": "127.0.0.1", "port": relay.port, "server_hostname": "localhost"}
    j.update(files)
    j.update(kw)
    return j


def test_readings_alerts_and_shadow_reports_arrive_on_their_topics(local_broker, relay, tmp_path):
    files = device_files(local_broker, THING, tmp_path / "certs")
    with local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe(f"dt/{THING}/#", f"$aws/things/{THING}/shadow/#")
        p = MpyClient(job(files, relay, mode="stream", spool=str(tmp_path / "spool"), readings=6,
                          interval=0.1, alerts_at=[2], report_at=4, batch_max=20), tmp_path)
        try:
            assert p.wait(60) == 0, p.output()
        finally:
            p.stop()
        out = p.output()
        assert "STATS" in out and '"backlog": 0' in out, out
        mon.wait_for(lambda m: m.topic.endswith("/update/accepted"))
        tele = [m for m in mon.messages if m.topic == f"dt/{THING}/telemetry"]
        alerts = [m for m in mon.messages if m.topic == f"dt/{THING}/alerts"]
        readings = [r for m in tele for r in m.json()]
        assert [r["i"] for r in readings] == list(range(6))
        assert all(r["voltage"] == 23000 + r["i"] for r in readings)
        assert [a.json()["rule"] for a in alerts] == ["voltage_range"]
        seqs = sorted([r["seq"] for r in readings] + [a.json()["seq"] for a in alerts])
        assert seqs == list(range(1, 8))                       # every spool record, once
        assert alerts[0].json()["seq"] == 4                    # appended right after reading i=2
        upd = [m.json() for m in mon.messages if m.topic == f"$aws/things/{THING}/shadow/update"]
        assert upd and upd[0]["state"]["reported"]["i"] == 4 and "clientToken" in upd[0]
        got = [m.json() for m in mon.messages if m.topic == f"$aws/things/{THING}/shadow/get"]
        assert got, "no shadow GET after connect"
        acc = mon.wait_for(lambda m: m.topic.endswith("/update/accepted")).json()
        assert acc["state"]["reported"]["i"] == 4
    # TLS 1.2 sends the client certificate (CN = thing name) in clear; MQTT must never be
    wire = bytes(relay.up)
    assert len(wire) > 500 and b"MQTT" not in wire and b"dt/" not in wire and b"voltage" not in wire


def _other_ca_files(tmp_path, files):
    other = tmp_path / "other-ca"
    certs.init_ca(other, cn="someone else's CA")
    (tmp_path / "certs" / "other-root.der").write_bytes(certs.to_der(other / "ca.crt"))
    return dict(files, ca=str(tmp_path / "certs" / "other-root.der"))


def _expired(local_broker, tmp_path, files):
    now = datetime.datetime.now(datetime.timezone.utc)
    return device_files(local_broker, "net-dev-expired", tmp_path / "expired",
                        not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1))


CASES = {
    "server cert from another CA": (lambda b, t, f: (_other_ca_files(t, f), {}), "unknown CA"),
    "hostname mismatch": (lambda b, t, f: (f, {"server_hostname": "broker.example.com"}), "hostname mismatch"),
    "expired device cert": (lambda b, t, f: (_expired(b, t, f), {}), "expired on"),
    "expired device cert, no local check": (lambda b, t, f: (_expired(b, t, f), {"check_dates": False}),
                                            "refused our device certificate"),
    "missing key": (lambda b, t, f: (dict(f, key=str(t / "certs" / "nope.key.der")), {}), "device key"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tls_failures_are_refused_named_and_nothing_goes_in_clear(local_broker, relay, tmp_path, case):
    make, words = CASES[case]
    files, extra = make(local_broker, tmp_path, device_files(local_broker, THING, tmp_path / "certs"))
    with local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe("dt/+/#")
        p = MpyClient(job(files, relay, mode="connect", **extra), tmp_path)
        try:
            assert p.wait(30) == 0, p.output()
        finally:
            p.stop()
        line = p.wait_line(lambda ln: ln.startswith(("REFUSED", "CONNECTED")))
        assert line.startswith("REFUSED") and words in line, p.output()
        print("\n" + case + ": " + line)
        if case == "missing key":
            assert "missing" in line and "nope.key.der" in line
        # the control case: the same job with good files connects and its probe arrives
        good = MpyClient(job(device_files(local_broker, THING, tmp_path / "certs"), relay, mode="connect"), tmp_path)
        try:
            assert good.wait(30) == 0
        finally:
            good.stop()
        assert good.wait_line(lambda ln: ln.startswith(("REFUSED", "CONNECTED"))) == "CONNECTED", good.output()
        probe = mon.wait_for(lambda m: m.topic == f"dt/{THING}/telemetry")
        assert len([m for m in mon.messages if m.topic.startswith("dt/")]) == 1  # only the good one
    assert b"MQTT" not in bytes(relay.up) and b"dt/" not in bytes(relay.up)
