"""A running local broker + shadow service for tests, with a CA made in a tmp folder.

Use from a test module (one broker per module):

    from _broker_fixtures import local_broker, MqttProbe   # noqa: F401  (the fixture is imported)

    def test_x(local_broker):
        crt, key = local_broker.device_cert("grid-001")
        with local_broker.probe("grid-001") as dev:          # paho client, CN grid-001
            dev.subscribe("$aws/things/grid-001/shadow/update/accepted")
            dev.publish("$aws/things/grid-001/shadow/update", {"state": {"reported": {"v": 1}}})
            msg = dev.wait_for(lambda m: m.topic.endswith("/accepted"))

`local_broker` has .broker (host_tools.cloud.broker.Broker: .host, .port, .ca_cert, .log_path),
.service (ShadowService; .service.store is its ShadowStore), .jobs (JobsService; .jobs.store), .ca_dir, .root (tmp folder),
.device_cert(thing) -> (crt, key) and .client_cert(cn) -> (crt, key) for the host CNs
(edgeshadow-monitor, edgeshadow-admin), .state_file() -> broker.json for CLI commands.
"""
import contextlib
import json
import queue
import ssl
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools.cloud import certs
from host_tools.cloud.broker import JOBS_CN, SERVICE_CN, Broker, write_state
from host_tools.cloud.jobs_service import JobsService
from host_tools.cloud.shadow_service import ShadowService, no_delay


class Message:
    def __init__(self, topic, payload):
        self.topic, self.payload = topic, payload

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return f"Message({self.topic!r}, {self.payload[:80]!r})"


class MqttProbe:
    """A paho-mqtt 2.2 client (MQTT 3.1.1, TLS) that records every message it receives."""

    def __init__(self, host, port, ca=None, cert=None, key=None, client_id=None, timeout=5.0):
        self.timeout = timeout
        self.messages = []
        self._cond = threading.Condition()
        self._acks = queue.Queue()
        self._connack = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if ca is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=str(ca))
            if cert is not None:
                ctx.load_cert_chain(str(cert), str(key))
            self.client.tls_set_context(ctx)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)  # quick close after a refusal
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._acks.put((mid, [int(rc.value) for rc in rcs]))
        self.client.on_connect = lambda c, u, f, rc, p: self._connack.put(rc)
        # TLS 1.3: a refused client certificate shows up after the handshake, as a closed connection
        self.client.on_disconnect = lambda c, u, f, rc, p: self._connack.put(None)
        self.host, self.port = host, port

    def connect(self):
        """Connect and wait for CONNACK; a refused handshake or connection raises (OSError)."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        rc = self._connack.get(timeout=self.timeout)
        if rc is None or rc.is_failure:
            self.close()
            raise ConnectionRefusedError("connection closed before CONNACK" if rc is None else f"CONNACK {rc}")
        no_delay(self.client)
        return self

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def subscribe(self, *filters, qos=1):
        """Subscribe and wait for SUBACK; returns the granted QoS list (128 = refused)."""
        _, mid = self.client.subscribe([(f, qos) for f in filters])
        got_mid, codes = self._acks.get(timeout=self.timeout)
        assert got_mid == mid
        return codes

    def publish(self, topic, payload, qos=1):
        """Publish and wait until the broker acknowledged it (QoS 1 PUBACK)."""
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(self.timeout)
        assert info.is_published(), f"no PUBACK for {topic}"

    def wait_for(self, pred, timeout=None):
        """The first recorded message matching pred, waiting up to timeout (AssertionError if none)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message; got {self.messages}")
                self._cond.wait(left)

    def topics(self):
        with self._cond:
            return [m.topic for m in self.messages]

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalBrokerEnv:
    def __init__(self, broker, service, ca_dir, root):
        self.broker, self.service, self.ca_dir, self.root = broker, service, ca_dir, Path(root)

    @property
    def host(self):
        return self.broker.host

    @property
    def port(self):
        return self.broker.port

    def device_cert(self, thing, **kw):
        out = self.root / "devices" / thing
        if kw or not (out / certs.DEVICE_CRT).exists():
            certs.issue_device(thing, out, self.ca_dir, **kw)
        return out / certs.DEVICE_CRT, out / certs.DEVICE_KEY

    def client_cert(self, cn):
        return self.broker.client_cert(cn)

    def probe(self, cn, client_id=None):
        """A connected MqttProbe with a certificate for CN `cn` (host CNs or thing names)."""
        crt, key = self.client_cert(cn) if cn.startswith("edgeshadow-") else self.device_cert(cn)
        return MqttProbe(self.host, self.port, self.broker.ca_cert, crt, key,
                         client_id=client_id or cn).connect()

    def state_file(self):
        return write_state(self.broker)


@pytest.fixture(scope="module")
def local_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("broker")
    ca_dir = root / "ca"
    certs.init_ca(ca_dir)
    broker = Broker(root / "work", ca_dir)
    broker.start()
    try:
        crt, key = broker.client_cert(SERVICE_CN)
        service = ShadowService(broker.host, broker.port, broker.ca_cert, crt, key, root / "shadows")
        service.start()
        jcrt, jkey = broker.client_cert(JOBS_CN)
        jobs = JobsService(broker.host, broker.port, broker.ca_cert, jcrt, jkey, root / "jobs")
        try:
            jobs.start()
            env = LocalBrokerEnv(broker, service, ca_dir, root)
            env.jobs = jobs
            yield env
        finally:
            jobs.stop()
            service.stop()
    finally:
        broker.stop()


@contextlib.contextmanager
def connected_board(env, root, thing, interval_s, **vb_kw):
    """A virtual board running the firmware (scenario "nominal"), its certificate and a config for
    env's broker injected as a user would (`edgeshadow inject`), soft-reset and connected; stopped
    afterwards. vb.started_at: the unix second before it started."""
    from host_tools.demo import device_config
    from host_tools.device.inject import inject_boards
    from host_tools.device.link import BoardLink
    from host_tools.sim.board import VirtualBoard
    certs.issue_device(thing, root / "certs" / thing, env.ca_dir)
    config = root / "config.json"
    config.write_text(json.dumps(device_config(env.port, interval_s)))
    vb = VirtualBoard(root / "board", thing=thing, scenario="nominal", **vb_kw)
    vb.started_at = int(time.time())
    vb.start()
    try:
        [result] = inject_boards([(vb.port, thing)], root / "certs", config=config)
        assert result.ok, result.detail
        mark = len(vb.log())
        with BoardLink(vb.port) as link:
            link.soft_reset()
        vb.wait_for_log("net: connected", timeout=60, start=mark)
        yield vb
    finally:
        vb.stop()
