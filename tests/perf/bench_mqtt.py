"""MQTT benchmarks: the firmware's net modules inside the real MicroPython unix port, real Mosquitto
over mutual TLS (host_tools.cloud.broker). Prints `figure: value unit` lines.

- QoS1 publishes per second (in-flight window 20, 70-byte payloads)
- seconds from a broker restart to reconnected (default backoff policy: 1 s min, full jitter)
- bytes on the wire per reading, single publishes vs batches of 20 (TLS records, both directions)
"""
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "host")]

from _net_fixtures import MpyClient, Relay  # noqa: E402
from host_tools.cloud import certs  # noqa: E402
from host_tools.cloud.broker import Broker  # noqa: E402

THING = "bench-001"


def der_files(tmp, ca_dir):
    out = tmp / "dev"
    crt = certs.issue_device(THING, out, ca_dir)
    files = {"ca": out / "root-ca.der", "cert": out / "device.der", "key": out / "device.key.der"}
    files["ca"].write_bytes(certs.to_der(ca_dir / "ca.crt"))
    files["cert"].write_bytes(certs.to_der(crt))
    files["key"].write_bytes(certs.to_der(out / certs.DEVICE_KEY))
    return {k: str(v) for k, v in files.items()}


def run(job, tmp, timeout=120):
    p = MpyClient(job, tmp)
    try:
        if p.wait(timeout) != 0:
            raise SystemExit("micropython failed:\n" + p.output())
    finally:
        p.stop()
    return p


def main():
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        certs.init_ca(tmp / "ca")
        broker = Broker(tmp / "broker", tmp / "ca").start()
        relay = Relay(broker.host, broker.port)
        try:
            base = dict(der_files(tmp, tmp / "ca"), thing=THING, host="127.0.0.1", port=relay.port,
                        server_hostname="localhost")
            # 1. QoS1 throughput
            p = run(dict(base, mode="bench", count=1000), tmp)
            import json
            st = json.loads(p.wait_line(lambda ln: ln.startswith("STATS")).split(" ", 1)[1])
            print(f"qos1_publishes_per_s: {st['publishes'] / st['seconds']:.0f} /s", flush=True)

            # 2. bytes on the wire per reading: single vs batched (difference to a 0-reading run)
            n = 40
            for label, batch in (("single", 1), ("batched_20", 20)):
                sizes = []
                for readings in (0, n):
                    relay.reset()
                    run(dict(base, mode="stream", spool=str(tmp / f"sp-{label}-{readings}"), readings=readings,
                             interval=0.0, batch_max=batch), tmp)
                    sizes.append(len(relay.up) + len(relay.down))
                print(f"wire_bytes_per_reading_{label}: {(sizes[1] - sizes[0]) / n:.0f} B", flush=True)

            # 3. broker restart -> reconnected, default backoff
            p = MpyClient(dict(base, mode="stream", spool=str(tmp / "sp-restart"), readings=600, interval=0.1), tmp)
            try:
                times = []
                for k in range(3):
                    want = f"connect #{k + 1}"
                    p.wait_line(lambda ln, w=want: w in ln, 30)
                    broker.stop()
                    relay.cut()
                    broker.start()
                    t0 = time.monotonic()
                    want = f"connect #{k + 2}"
                    p.wait_line(lambda ln, w=want: w in ln, 200)
                    times.append(time.monotonic() - t0)
                print(f"broker_restart_to_reconnected_s: {sum(times) / len(times):.2f} s "
                      f"(max {max(times):.2f}, {len(times)} restarts)", flush=True)
            finally:
                p.stop()
        finally:
            relay.close()
            broker.stop()


if __name__ == "__main__":
    main()
