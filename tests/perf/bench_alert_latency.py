"""Milliseconds from an anomalous sample to its alert event at a subscriber: the full firmware on a
virtual board, real Mosquitto over mutual TLS, a paho subscriber. Alerts are provoked by moving a
voltage range rule over the nominal signal and back (raise, clear, raise, ...)."""
import json
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paho.mqtt.client as mqtt  # noqa: E402

from host_tools.cloud import certs  # noqa: E402
from host_tools.cloud.broker import MONITOR_CN, ADMIN_CN, local_stack  # noqa: E402
from host_tools.demo import device_config  # noqa: E402
from host_tools.device.inject import inject_boards  # noqa: E402
from host_tools.device.link import BoardLink  # noqa: E402
from host_tools.cloud.shadow_api import LocalShadow  # noqa: E402
from host_tools.sim.board import VirtualBoard  # noqa: E402

THING = "grid-bench-001"
ROUNDS = 6


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with local_stack(tmp / "broker", tmp / "ca") as (broker, _svc, _state):
            certs.issue_device(THING, tmp / "certs" / THING, tmp / "ca")
            cfg = device_config(broker.port, interval_s=1)
            (tmp / "config.json").write_text(json.dumps(cfg))
            with VirtualBoard(tmp / "board", thing=THING, scenario="nominal") as vb:
                [r] = inject_boards([(vb.port, THING)], tmp / "certs", config=tmp / "config.json")
                assert r.ok, r.message
                mark = len(vb.log())
                with BoardLink(vb.port) as link:
                    link.soft_reset()
                vb.wait_for_log("net: connected", timeout=60, start=mark)
                latencies = []
                got = threading.Event()
                crt, key = broker.client_cert(MONITOR_CN)
                sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-alerts")
                sub.tls_set(ca_certs=str(broker.ca_cert), certfile=str(crt), keyfile=str(key),
                            cert_reqs=ssl.CERT_REQUIRED)

                def on_message(client, userdata, msg):
                    ev = json.loads(msg.payload)
                    if ev.get("metric") == "voltage" and ev.get("rule") == "range":
                        latencies.append((time.time() - ev["ts"]) * 1000)
                        got.set()
                sub.on_message = on_message
                sub.connect(broker.host, broker.port)
                sub.subscribe(f"dt/{THING}/alerts", qos=1)
                sub.loop_start()
                acrt, akey = broker.client_cert(ADMIN_CN)
                try:
                    with LocalShadow(broker.host, broker.port, broker.ca_cert, acrt, akey) as sh:
                        rules = [dict(x) for x in cfg["rules"]]
                        vrule = next(x for x in rules if x["metric"] == "voltage" and x["type"] == "range")
                        for i in range(ROUNDS):
                            got.clear()
                            vrule["min"], vrule["max"] = (30000, 40000) if i % 2 == 0 else (23000, 25000)
                            sh.set_desired(THING, {"rules": rules})
                            if not got.wait(30):
                                print(f"alert_latency: no event in round {i}")
                                return 1
                finally:
                    sub.loop_stop()
                    sub.disconnect()
    latencies.sort()
    print(f"alert_latency_median: {latencies[len(latencies) // 2]:.1f} ms")
    print(f"alert_latency_max: {latencies[-1]:.1f} ms")
    print(f"alert_latency_events: {len(latencies)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
