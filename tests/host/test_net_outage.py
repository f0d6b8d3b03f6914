"""The broker stopped for 60 s during a 1-sample-per-second stream: afterwards every reading taken
during the outage arrives, in order, counted by sequence number, none missing, duplicates marked by
their repeated seq. Firmware: net.* inside the real MicroPython unix port; broker: real Mosquitto
with mutual TLS; subscriber: paho-mqtt. The one long network test (~75 s)."""
import time

import pytest

from _broker_fixtures import MqttProbe
from _net_fixtures import MpyClient, Relay
from host_tools.cloud import certs
from host_tools.cloud.broker import MONITOR_CN, Broker

THING = "net-outage-001"
OUTAGE_S = 60


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


@pytest.mark.timeout(240)
def test_readings_taken_during_a_60s_broker_outage_all_arrive_in_order(tmp_path):
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
        n = OUTAGE_S + 12
        job = dict(_der(tmp_path, ca_dir), mode="stream", thing=THING, host="127.0.0.1", port=relay.port,
                   server_hostname="localhost", spool=str(tmp_path / "spool"), readings=n, interval=1.0,
                   batch_max=20, backoff_cap=4, keepalive=30, drain_s=60)
        proc = MpyClient(job, tmp_path)
        deadline = time.monotonic() + 30
        while len(_seqs(before)) < 3:
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.05)
        relay.gate = False
        broker.stop()
        relay.cut()
        t_down = time.monotonic()
        before.close()
        proc.wait_line(lambda ln: "link down" in ln, 10)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))   # the outage itself
        broker.start()
        after = probe()                   # subscribed before the device may come back
        relay.gate = True
        assert proc.wait(n + 90) == 0, proc.output()
        stats = proc.wait_line(lambda ln: ln.startswith("STATS"))
        assert '"backlog": 0' in stats, proc.output()
        a, b = _seqs(before), _seqs(after)
        appended = [int(ln.split()[1]) for ln in proc.lines if ln.startswith("APPENDED")]
        assert appended == list(range(1, n + 1))
        # none missing
        assert {s for s, _ in a + b} == set(appended)
        # in order: after the outage, first arrivals come in increasing seq
        firsts = []
        for s, _ in b:
            if s not in firsts:
                firsts.append(s)
        assert firsts == sorted(firsts)
        # the outage's readings arrived after the broker came back
        outage = [s for s, i in b if s > max(s for s, _ in a)]
        assert len(set(outage)) >= OUTAGE_S - 5
        # duplicates are identifiable: the same seq carries the same reading
        seen = {}
        for s, i in a + b:
            assert seen.setdefault(s, i) == i
        dups = len(a + b) - len(seen)
        print(f"\nreadings {n}, before outage {len(a)}, after {len(b)}, duplicates {dups}, "
              f"connects: {stats}")
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
