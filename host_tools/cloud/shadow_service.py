"""The local AWS IoT Device Shadow service: the MQTT front end of host_tools.cloud.shadow_store.

`ShadowService` connects to a broker with its own client certificate (CN
edgeshadow-shadow-service), subscribes to every thing's shadow request topics (classic and named:
update, get, delete) and publishes what `ShadowStore` answers on the response topics, in AWS's
order: accepted or rejected, then delta, then documents. It subscribes again after every reconnect,
so a broker restart costs no more than the reconnect delay (0.2 to 2 s).
"""
import json
import logging
import ssl
import threading
import time

from host_tools.errors import EdgeshadowError
from host_tools.cloud.shadow_store import (MAX_DEPTH, MAX_STATE_BYTES, MAX_TOKEN_BYTES,  # noqa: F401 (API)
                                     ShadowStore, delta_of, is_rejected)

log = logging.getLogger("edgeshadow.shadow")

# -- the MQTT front end -------------------------------------------------------------------------

REQUEST_FILTERS = [f"$aws/things/+/shadow/{op}" for op in ("update", "get", "delete")] + \
                  [f"$aws/things/+/shadow/name/+/{op}" for op in ("update", "get", "delete")]


def tls_context(ca, cert, key):
    """Client-side TLS for host tools: verify the broker against our CA, present our certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def no_delay(client):
    """TCP_NODELAY on a connected paho client: without it, Nagle holds a second small publish
    until the first is ACKed, and delayed ACKs make that about 40 ms per response."""
    import socket
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def parse_topic(topic):
    """'$aws/things/T/shadow[/name/N]/op' -> (thing, name or None, op) or None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow":
        return parts[2], None, parts[4]
    if len(parts) == 7 and parts[:2] == ["$aws", "things"] and parts[3:5] == ["shadow", "name"]:
        return parts[2], parts[5], parts[6]
    return None


class ShadowService:
    """Answers shadow requests of every thing on a broker (paho-mqtt network thread)."""

    CLIENT_ID = "edgeshadow-shadow-service"

    def __init__(self, broker_host, port, ca, cert, key, state_dir, clock=time.time):
        import paho.mqtt.client as mqtt
        self.host, self.port = broker_host, port
        self.store = ShadowStore(state_dir, clock)
        self._subscribed = threading.Event()
        self._problem = None
        self.handled = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.CLIENT_ID,
                        protocol=mqtt.MQTTv311, clean_session=True)
        c.tls_set_context(tls_context(ca, cert, key))
        c.reconnect_delay_set(min_delay=0.2, max_delay=2)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        self._client = c

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._problem = f"the broker refused the shadow service: {reason_code}"
            self._subscribed.set()
            return
        no_delay(client)
        client.subscribe([(f, 1) for f in REQUEST_FILTERS])  # again after every reconnect

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [f for f, rc in zip(REQUEST_FILTERS, reason_codes) if rc.is_failure]
        if refused:
            self._problem = f"the broker refused the shadow service's subscriptions {refused} (check the ACL)"
        self._subscribed.set()

    def _on_message(self, client, userdata, msg):
        where = parse_topic(msg.topic)
        if where is None:
            return
        thing, name, op = where
        base = msg.topic.rsplit("/", 1)[0]
        try:
            if op == "update":
                response, delta, documents = self.store.update(thing, msg.payload, name)
                ok = not is_rejected(response)
                out = [(f"{base}/update/{'accepted' if ok else 'rejected'}", response)]
                if delta is not None:
                    out.append((f"{base}/update/delta", delta))
                if documents is not None:
                    out.append((f"{base}/update/documents", documents))
            elif op in ("get", "delete"):
                response = getattr(self.store, op)(thing, msg.payload, name)
                out = [(f"{base}/{op}/{'rejected' if is_rejected(response) else 'accepted'}", response)]
            else:
                return
        except Exception as e:  # a broken state file must not kill the service thread
            log.exception("shadow request on %s failed", msg.topic)
            out = [(f"{base}/{op}/rejected", {"code": 500, "message": f"Internal service failure ({e})",
                                              "timestamp": int(time.time())})]
        for topic, doc in out:
            client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=1)
        self.handled += 1

    def start(self, timeout=10.0):
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError) as e:
            raise EdgeshadowError(f"the shadow service could not connect to {self.host}:{self.port}: {e}")
        self._client.loop_start()
        if not self._subscribed.wait(timeout) or self._problem:
            self.stop()
            raise EdgeshadowError(self._problem or f"the shadow service got no answer from "
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
