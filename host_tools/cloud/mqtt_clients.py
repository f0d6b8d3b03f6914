"""The host side's MQTT clients over the local broker (paho-mqtt, TLS with our client certificates).

- `ServiceClient`: a long-running service (the shadow and jobs services): its own CN, its request
  filters subscribed again after every reconnect, `start()` waits for the SUBACK.
- `AdminClient`: a command's short-lived client (CN edgeshadow-admin): `request(topic, body)`
  publishes with a clientToken and waits for the reply carrying it on `<topic>/accepted` or
  `/rejected` (`edgeshadow shadow`, `edgeshadow ota`).
"""
import json
import socket
import ssl
import threading
import time
import uuid

from host_tools.errors import EdgeshadowError


def tls_context(ca, cert, key):
    """Client-side TLS for host tools: verify the broker against our CA, present our certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def no_delay(client):
    """TCP_NODELAY on a connected paho client: without it, Nagle holds a second small publish
    until the first is ACKed, and delayed ACKs make that about 40 ms per response."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _client(client_id, ca, cert, key, clean_session=True):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                    clean_session=clean_session)
    c.tls_set_context(tls_context(ca, cert, key))
    return c


class ServiceClient:
    """Base of a service answering requests on `REQUEST_FILTERS` from its `STORE` (made from
    state_dir and clock); subclasses define `CLIENT_ID`, `WHAT` ("the shadow service"),
    `REQUEST_FILTERS`, `STORE` and `_on_message(client, userdata, msg)`."""

    CLIENT_ID = WHAT = STORE = None
    REQUEST_FILTERS = ()

    def __init__(self, broker_host, port, ca, cert, key, state_dir, clock=time.time):
        self.host, self.port = broker_host, port
        self.store = self.STORE(state_dir, clock)
        self.clock = clock
        self._subscribed = threading.Event()
        self._problem = None
        c = _client(self.CLIENT_ID, ca, cert, key)
        c.reconnect_delay_set(min_delay=0.2, max_delay=2)  # a broker restart costs 0.2 to 2 s
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        self._client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._problem = f"the broker refused {self.WHAT}: {reason_code}"
            self._subscribed.set()
            return
        no_delay(client)
        client.subscribe([(f, 1) for f in self.REQUEST_FILTERS])  # again after every reconnect

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [f for f, rc in zip(self.REQUEST_FILTERS, reason_codes) if rc.is_failure]
        if refused:
            self._problem = f"the broker refused {self.WHAT}'s subscriptions {refused} (check the ACL)"
        self._subscribed.set()

    def _on_message(self, client, userdata, msg):
        raise NotImplementedError

    def _publish(self, topic, doc):
        self._client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=1)

    def start(self, timeout=10.0):
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError) as e:
            raise EdgeshadowError(f"{self.WHAT} could not connect to {self.host}:{self.port}: {e}")
        self._client.loop_start()
        if not self._subscribed.wait(timeout) or self._problem:
            self.stop()
            raise EdgeshadowError(self._problem or f"{self.WHAT} got no answer from "
                                  f"{self.host}:{self.port} within {timeout:.0f} s")
        return self

    def stop(self):
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class AdminClient:
    """A command's client on the local broker: connect, then request/reply by clientToken.
    `subscriptions`: filters held for the whole connection (replies of every request);
    otherwise `request` subscribes to its own reply topics."""

    def __init__(self, host, port, ca, cert, key, timeout=10.0, subscriptions=()):
        self.host, self.port, self.timeout = host, port, timeout
        self._replies = {}
        self._cond = threading.Condition()
        self._suback = threading.Event()
        self._connected = threading.Event()
        self._refused = None
        self._subscriptions = list(subscriptions)
        c = _client(f"edgeshadow-admin-{uuid.uuid4().hex[:8]}", ca, cert, key)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda cl, ud, mid, rcs, pr: self._suback.set()
        c.on_message = self._on_message
        self._client = c
        try:
            c.connect(host, port, keepalive=30)
        except OSError as e:
            raise EdgeshadowError(f"cannot reach the local broker at {host}:{port}: {e}",
                                  hint="is `edgeshadow broker` running?")
        c.loop_start()
        ready = self._connected.wait(timeout) and (not self._subscriptions or self._suback.wait(timeout))
        if not ready or self._refused:
            self.close()
            raise EdgeshadowError(f"the local broker at {host}:{port} did not accept the admin client: "
                                  f"{self._refused or f'no answer within {timeout:.0f} s'}")

    @classmethod
    def from_state(cls, workdir=None, timeout=10.0):
        from host_tools.cloud.broker import read_state
        s = read_state(workdir)
        return cls(s["host"], s["port"], s["ca"], s["admin_cert"], s["admin_key"], timeout)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            no_delay(client)
            if self._subscriptions:
                client.subscribe([(f, 1) for f in self._subscriptions])
        self._connected.set()

    def _on_message(self, client, userdata, msg):
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        token = doc.get("clientToken") if isinstance(doc, dict) else None
        if token:
            with self._cond:
                self._replies[token] = (msg.topic, doc)
                self._cond.notify_all()

    def request(self, topic, body, what, hint=None):
        """Publish body + clientToken on topic; -> (accepted: bool, reply document without token).
        EdgeshadowError naming `what` when no reply came within the timeout."""
        replies = [topic + "/accepted", topic + "/rejected"]
        own = not self._subscriptions
        if own:
            self._suback.clear()
            self._client.subscribe([(r, 1) for r in replies])
            if not self._suback.wait(self.timeout):
                raise EdgeshadowError(f"the local broker did not confirm the subscription to {topic}/+")
        token = uuid.uuid4().hex
        self._client.publish(topic, json.dumps(dict(body, clientToken=token)), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._replies, self.timeout):
                raise EdgeshadowError(f"{what} did not answer on {topic}/accepted or /rejected within "
                                      f"{self.timeout:.0f} s", hint=hint)
            reply_topic, doc = self._replies.pop(token)
        if own:
            self._client.unsubscribe(replies)
        doc.pop("clientToken", None)
        return not reply_topic.endswith("/rejected"), doc

    def close(self):
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
