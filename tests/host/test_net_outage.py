"""The broker stopped while a board streams one reading per interval, for as long as the board takes
OUTAGE_READINGS readings: afterwards every reading taken during the outage arrives, in order,
counted by sequence number, none missing, duplicates marked by their repeated seq. Firmware: net.*
inside the real MicroPython unix port; broker: real Mosquitto with mutual TLS; subscriber: paho-mqtt.

The clock is compressed: the interval and the reconnect backoff (base, floor, cap) are all scaled by
OUTAGE_INTERVAL_S (default 0.1 s), so `make test` sees the same 60 readings spooled during the
outage and delivered after it as a 60 s outage at 1 reading/s, in about a tenth of the time. The
outage is measured in readings the board spooled, not in host seconds. `make soak` runs this test
again with OUTAGE_INTERVAL_S=1: the real 60 s outage at the board's real 1 s interval."""
import os
import time

import pytest

from _broker_fixtures import MqttProbe
from _net_fixtures import MpyClient, Relay
from host_tools.cloud import certs
from host_tools.cloud.broker import MONITOR_CN, Broker

THING = "net-outage-001"
INTERVAL_S = float(os.environ.get("OUTAGE_INTERVAL_S") or 0.1)
OUTAGE_READINGS = 60      # readings spooled while the broker is down (60 s at 1 reading/s)
BEFORE, AFTER = 3, 9      # readings delivered before the outage; readings taken after it


def _der(tmp_path, ca_dir):
    out = tmp_path / "dev"
    crt = certs.issue_device(THING, out, ca_dir)
    files = {"ca": out / "root-ca.der", "cert": out / "device.der", "key": out / "device.key.der"}
    files["ca"].write_bytes(certs.to_der(ca_dir / "ca.crt"))
    files["cert"].write_bytes(certs.to_der(crt))
    files["key"].write_bytes(certs.to_der(out / certs.DEVICE_KEY))
    return {k: str(v) for k, v in files.items()}


def _seqs(probe):
    out = []
    for m in list(probe.messages):
        if m.topic == f"dt/{THING}/telemetry":
            out += [(r["seq"], r["i"]) for r in m.json()]
    return out


def _appended(proc, upto=None):
    """Sequence numbers the board spooled, from its output (the first `upto` lines)."""
    return [int(ln.split()[1]) for ln in proc.lines[:upto] if ln.startswith("APPENDED")]


def _wait(cond, timeout, proc):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, proc.output()
        time.sleep(min(0.05, INTERVAL_S / 2))


@pytest.mark.timeout(int(240 + 2 * OUTAGE_READINGS * INTERVAL_S))
def test_readings_taken_during_a_broker_outage_of_60_readings_all_arrive_in_order(tmp_path):
    ca_dir = tmp_path / "ca"
    certs.init_ca(ca_dir)
    broker = Broker(tmp_path / "broker", ca_dir).start()
    relay = Relay(broker.host, broker.port)
    probes = []
    proc = None
    try:
        mon_crt, mon_key = broker.client_cert(MONITOR_CN)

        def probe():
            p = MqttProbe(broker.host, broker.port, broker.ca_cert, mon_crt, mon_key).connect()
            p.subscribe(f"dt/{THING}/#")
            probes.append(p)
            return p

        before = probe()
        n = BEFORE + OUTAGE_READINGS + AFTER
        # every time constant of the board's side on the compressed clock: 1 s becomes INTERVAL_S
        job = dict(_der(tmp_path, ca_dir), mode="stream", thing=THING, host="127.0.0.1", port=relay.port,
                   server_hostname="localhost", spool=str(tmp_path / "spool"), readings=n,
                   interval=INTERVAL_S, backoff_base=INTERVAL_S, backoff_floor=INTERVAL_S,
                   backoff_cap=4 * INTERVAL_S, wait_up_first=True, batch_max=20, keepalive=30, drain_s=60)
        proc = MpyClient(job, tmp_path)
        _wait(lambda: len(_seqs(before)) >= BEFORE, 30, proc)
        relay.gate = False
        relay.cut()                       # the board's link first: nothing is half-way into the broker
        broker.stop()
        before.close()
        proc.wait_line(lambda ln: "link down" in ln, 10)
        down_at = len(proc.lines)
        # the outage itself: until the board has spooled OUTAGE_READINGS more readings
        _wait(lambda: len(_appended(proc)) - len(_appended(proc, down_at)) >= OUTAGE_READINGS,
              OUTAGE_READINGS * INTERVAL_S + 60, proc)
        up_at = len(proc.lines)
        broker.start()
        after = probe()                   # subscribed before the device may come back
        relay.gate = True
        assert proc.wait(n * INTERVAL_S + 90) == 0, proc.output()
        stats = proc.wait_line(lambda ln: ln.startswith("STATS"))
        assert '"backlog": 0' in stats, proc.output()
        a, b = _seqs(before), _seqs(after)
        appended = _appended(proc)
        assert appended == list(range(1, n + 1))
        # none missing
        assert {s for s, _ in a + b} == set(appended)
        # in order: after the outage, first arrivals come in increasing seq
        firsts = []
        for s, _ in b:
            if s not in firsts:
                firsts.append(s)
        assert firsts == sorted(firsts)
        # the outage's readings (spooled between link down and the broker's restart) all arrived
        # after the broker came back, none before
        outage = set(_appended(proc, up_at)) - set(_appended(proc, down_at))
        assert len(outage) >= OUTAGE_READINGS
        assert outage <= {s for s, _ in b} and not outage & {s for s, _ in a}
        # duplicates are identifiable: the same seq carries the same reading
        seen = {}
        for s, i in a + b:
            assert seen.setdefault(s, i) == i
        dups = len(a + b) - len(seen)
        print(f"\nreadings {n} every {INTERVAL_S} s, during the outage {len(outage)}, before it {len(a)}, "
              f"after it {len(b)}, duplicates {dups}, connects: {stats}")
        assert "connect #2" in proc.output()
    finally:
        if proc is not None:
            proc.stop()
        for p in probes:
            try:
                p.close()
            except Exception:
                pass
        relay.close()
        broker.stop()
