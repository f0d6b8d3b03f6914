"""Simulated devices for load: paho-mqtt clients publishing what the firmware publishes.

Each `SimDevice` connects with its own certificate (CN = thing name, so the broker's per-device
ACL applies as to a board) and publishes batched telemetry exactly as firmware/net/forwarder.py
does: `dt/<thing>/telemetry`, a JSON array of readings {"seq", "ts", "v": {metric: value}}, QoS 1,
seq counting up per device. `run_fleet` drives several at a target rate and returns what the
broker acknowledged, so a subscriber can be checked against it (thing -> list of seq).

Readings carry the device's own clock: ts = start_ts + seq * interval_s, so a fast run stands for
hours of 10-second readings.
"""
import json
import math
import ssl
import threading
import time

METRICS = {"voltage": (24000.0, 300.0), "current": (300.0, 50.0), "temperature": (45.0, 5.0),
           "humidity": (50.0, 10.0)}


def reading(seq, ts):
    """One reading of the grid sensor: values a slow sine around each metric's centre."""
    v = {m: round(c + a * math.sin(seq / 50.0 + i), 2) for i, (m, (c, a)) in enumerate(METRICS.items())}
    return {"seq": seq, "ts": ts, "v": v}


class SimDevice:
    def __init__(self, thing, host, port, ca, cert, key, start_ts=None, interval_s=10, first_seq=1):
        import paho.mqtt.client as mqtt
        self.thing = thing
        self.topic = f"dt/{thing}/telemetry"
        self.start_ts = int(time.time()) if start_ts is None else start_ts
        self.interval_s = interval_s
        self.next_seq = first_seq
        self.acked = []            # seqs of batches the broker acknowledged (PUBACK)
        self._pending = {}         # mid -> seqs
        self._early = set()        # mids whose PUBACK came before publish() returned
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        self.client.tls_set_context(ctx)
        self.client.max_inflight_messages_set(20)
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.on_publish = self._on_publish
        self.host, self.port = host, port

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            if mid in self._pending:
                self.acked.extend(self._pending.pop(mid))
            else:
                self._early.add(mid)  # acknowledged before publish_batch() recorded it

    def connect(self, timeout=10.0):
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise RuntimeError(f"{self.thing}: no CONNACK within {timeout} s")
        return self

    def publish_batch(self, n):
        seqs = list(range(self.next_seq, self.next_seq + n))
        self.next_seq += n
        body = [reading(s, self.start_ts + s * self.interval_s) for s in seqs]
        # not under self._lock: paho calls on_publish holding its own lock, which publish() takes too
        info = self.client.publish(self.topic, json.dumps(body, separators=(",", ":")), qos=1)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked.extend(seqs)
            else:
                self._pending[info.mid] = seqs
        return info

    def unacked(self):
        with self._lock:
            return len(self._pending)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def run_fleet(devices, readings_per_s, seconds, batch=20, between=None, drain_timeout=60.0):
    """Publish from every device, together `readings_per_s`, for `seconds`; then wait until
    every batch is acknowledged. `between(elapsed)` is called about every 50 ms (a test's hook);
    publishing stops early when it returns true.
    Returns {thing: [seq, ...]} of what the broker acknowledged."""
    per_batch_s = batch * len(devices) / float(readings_per_s)   # one batch from each device per tick
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        due = start + tick * per_batch_s
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.05))
        else:
            for d in devices:
                if d.unacked() < 200:  # the broker is not keeping up: do not queue without bound
                    d.publish_batch(batch)
            tick += 1
        if between is not None and between(time.monotonic() - start):
            break
    deadline = time.monotonic() + drain_timeout
    while any(d.unacked() for d in devices) and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting on PUBACKs (the condition), not on time
    return {d.thing: sorted(d.acked) for d in devices}
