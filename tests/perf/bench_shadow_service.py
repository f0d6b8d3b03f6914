"""Local broker and shadow service: start-up time, shadow round trips, the document model's cost.

Prints `figure: value unit` lines (tests/perf/run.py). Everything runs in a tmp folder with a CA
made here; the broker is real Mosquitto over mutual TLS, the client paho-mqtt.
"""
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "host")]

from _broker_fixtures import MqttProbe  # noqa: E402
from host_tools.cloud import certs  # noqa: E402
from host_tools.cloud.broker import SERVICE_CN, Broker  # noqa: E402
from host_tools.cloud.shadow_service import ShadowService, ShadowStore  # noqa: E402


def bench_store(n=5000):
    store = ShadowStore()
    t0 = time.perf_counter()
    for i in range(n):
        store.update("t", json.dumps({"state": {"reported": {"v": i, "m": {"a": i % 7}}}}).encode())
    return (time.perf_counter() - t0) / n * 1e6


def main():
    print(f"shadow model update: {bench_store():.1f} us")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        certs.init_ca(d / "ca")
        broker = Broker(d / "w", d / "ca")
        broker.client_cert("edgeshadow-monitor")  # keep certificate making out of the start figure
        broker._server_cert()
        t0 = time.perf_counter()
        broker.start()
        try:
            print(f"broker start to TLS-ready: {(time.perf_counter() - t0) * 1000:.0f} ms")
            crt, key = broker.client_cert(SERVICE_CN)
            with ShadowService(broker.host, broker.port, broker.ca_cert, crt, key, d / "shadows"):
                out = d / "dev"
                certs.issue_device("bench-1", out, d / "ca")
                dev = MqttProbe(broker.host, broker.port, broker.ca_cert, out / "device.crt",
                                out / "device.key", client_id="bench-1").connect()
                try:
                    base = "$aws/things/bench-1/shadow/update"
                    dev.subscribe(base + "/accepted")
                    lat = []
                    for i in range(200):
                        t = time.perf_counter()
                        dev.publish(base, {"state": {"reported": {"v": i}}, "clientToken": f"c{i}"})
                        dev.wait_for(lambda m, tok=f'"clientToken":"c{i}"': tok in m.payload.decode())
                        lat.append((time.perf_counter() - t) * 1000)
                    print(f"shadow update round trip median: {statistics.median(lat):.2f} ms")
                    print(f"shadow update round trip p95: {sorted(lat)[int(len(lat) * 0.95)]:.2f} ms")
                    n = 1000  # each update is written to disk (fsync) before it is answered
                    dev.messages.clear()
                    t = time.perf_counter()
                    for i in range(n):
                        dev.client.publish(base, json.dumps({"state": {"reported": {"w": i}}}), qos=1)
                    dev.wait_for(lambda m: json.loads(m.payload)["state"]["reported"]["w"] == n - 1, timeout=60)
                    print(f"shadow updates pipelined: {n / (time.perf_counter() - t):.0f} per s")
                finally:
                    dev.close()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
