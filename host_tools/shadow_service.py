"""A local AWS IoT Device Shadow service: the pure document model and its MQTT front end.

`ShadowStore` is the model, testable without MQTT: `update(thing, payload)`, `get(...)`,
`delete(...)` take the request bytes a client publishes and return the documents AWS would
publish (accepted or rejected, delta, documents), with the same error codes and messages
(https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html).
Shadows persist as one JSON file each under `state_dir`, written to a temporary file and renamed.

`ShadowService` connects to a broker with its own client certificate, subscribes to every thing's
shadow request topics and answers on the response topics.

Choices where AWS's documentation is silent (and what moto does, which the tests compare against):
- `/update/delta` is published when an update carries `desired` and the resulting delta has
  differences in the fields that update touched; it holds only those fields. A GET returns the
  whole delta.
- Deleting a shadow bumps its version; a shadow made again continues from there (AWS: "the version
  number of the new device shadow document will follow that of the deleted one").
"""
import json
import logging
import os
import ssl
import threading
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError

log = logging.getLogger("edgeshadow.shadow")

MAX_STATE_BYTES = 8 * 1024   # desired + reported, metadata excluded
MAX_DEPTH = 6                # levels inside desired or reported
MAX_TOKEN_BYTES = 64
SECTIONS = ("desired", "reported")
_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:-")


class Rejected(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def is_rejected(doc):
    return doc is not None and "code" in doc and "message" in doc


# -- JSON helpers -------------------------------------------------------------------------------

def _same(a, b):
    # JSON equality: true is not 1 (Python's == says it is).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def _depth(value):
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _strip_nulls(value):
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def _meta_of(value, ts):
    """Metadata mirrors the state: a timestamp per leaf, lists element by element."""
    if isinstance(value, dict):
        return {k: _meta_of(v, ts) for k, v in value.items()}
    if isinstance(value, list):
        return [_meta_of(v, ts) for v in value]
    return {"timestamp": ts}


def _merge(state, meta, patch, ts):
    """Apply an update section in place: null removes a key, objects merge, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            state.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict) and isinstance(state.get(key), dict):
            if not isinstance(meta.get(key), dict):
                meta[key] = {}
            _merge(state[key], meta[key], value, ts)
        else:
            state[key] = _strip_nulls(value)
            meta[key] = _meta_of(state[key], ts)


def delta_of(desired, reported):
    """Fields of desired that reported lacks or holds differently; objects compared field by field."""
    out = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
            continue
        have = reported[key]
        if _same(want, have):
            continue
        if isinstance(want, dict) and isinstance(have, dict):
            sub = delta_of(want, have)
            if sub:  # moto keeps an empty {} here; AWS lists only fields that differ
                out[key] = sub
        else:
            out[key] = want
    return out


def _restrict(delta, touched):
    """The part of `delta` under the keys an update touched."""
    out = {}
    for key, value in touched.items():
        if key not in delta:
            continue
        if isinstance(value, dict) and isinstance(delta[key], dict):
            sub = _restrict(delta[key], value)
            if sub:
                out[key] = sub
        else:
            out[key] = delta[key]
    return out


def _meta_subset(meta, shape):
    if not isinstance(shape, dict) or not isinstance(meta, dict):
        return meta
    return {k: _meta_subset(meta.get(k, {}), v) for k, v in shape.items()}


# -- the model ----------------------------------------------------------------------------------

class ShadowStore:
    """Shadows keyed by (thing, shadow name or None), persisted under state_dir if given."""

    def __init__(self, state_dir=None, clock=time.time):
        self.state_dir = Path(state_dir) if state_dir else None
        self.clock = clock
        self._records = {}
        self._lock = threading.Lock()

    # records: {"state": {...}, "metadata": {...}, "version": n, "timestamp": t, "deleted": bool}
    def _path(self, thing, name):
        return self.state_dir / (f"{thing}.json" if name is None else f"{thing}/{name}.json")

    def _record(self, thing, name):
        key = (thing, name)
        if key not in self._records:
            rec = None
            if self.state_dir:
                path = self._path(thing, name)
                if path.exists():
                    try:
                        rec = json.loads(path.read_text())
                    except ValueError as e:
                        raise EdgeshadowError(f"shadow file {path} is not valid JSON ({e})")
            self._records[key] = rec
        return self._records[key]

    def _save(self, thing, name, rec):
        self._records[(thing, name)] = rec
        if not self.state_dir:
            return
        path = self._path(thing, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(rec, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def snapshot(self, thing, name=None):
        """The stored record (state, metadata, version), or None if there is no shadow."""
        with self._lock:
            rec = self._record(thing, name)
            return None if rec is None or rec.get("deleted") else json.loads(json.dumps(rec))

    # -- requests --
    def _parse(self, payload, allow_empty):
        if isinstance(payload, str):
            payload = payload.encode()
        if allow_empty and not payload.strip():
            return {}
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(415, "Unsupported documented encoding; supported encoding is UTF-8")
        try:
            doc = json.loads(text)
        except ValueError:
            raise Rejected(400, "Invalid JSON")
        if not isinstance(doc, dict):
            raise Rejected(400, "Invalid JSON")
        return doc

    @staticmethod
    def _token(doc):
        tok = doc.get("clientToken")
        if tok is None:
            return None
        if not isinstance(tok, str) or len(tok.encode()) > MAX_TOKEN_BYTES:
            raise Rejected(400, "Invalid clientToken")
        return tok

    def _rejected(self, e, token):
        doc = {"code": e.code, "message": e.message, "timestamp": int(self.clock())}
        if token is not None:
            doc["clientToken"] = token
        return doc

    @staticmethod
    def _check_thing(thing, name):
        for what, value in (("thing name", thing), ("shadow name", name)):
            if value is not None and not (0 < len(value) <= 128 and set(value) <= _NAME_OK):
                raise Rejected(400, f"Invalid {what}: {value!r}")

    def update(self, thing, payload, name=None):
        """-> (accepted or rejected document, delta document or None, documents document or None)"""
        token = None
        try:
            self._check_thing(thing, name)
            req = self._parse(payload, allow_empty=False)
            token = self._token(req)  # an invalid token raises and is not echoed
            with self._lock:
                return self._update(thing, name, req, token)
        except Rejected as e:
            return self._rejected(e, token), None, None

    def _update(self, thing, name, req, token):
        if "state" not in req:
            raise Rejected(400, "Missing required node: state")
        state = req["state"]
        if state is not None and not isinstance(state, dict):
            raise Rejected(400, "State node must be an object")
        for key in state or {}:
            if key not in SECTIONS:
                raise Rejected(400, f"State contains an invalid node: '{key}'")
        for key in SECTIONS:
            value = (state or {}).get(key)
            if value is not None and not isinstance(value, dict):
                raise Rejected(400, f"{key.capitalize()} node must be an object")
            if value is not None and _depth(value) > MAX_DEPTH:
                raise Rejected(400, f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")
        version = req.get("version")
        if "version" in req and (isinstance(version, bool) or not isinstance(version, int)):
            raise Rejected(400, "Invalid version")
        old = self._record(thing, name)
        current_version = old["version"] if old else 0
        if "version" in req and version != current_version:
            raise Rejected(409, "Version conflict")

        ts = int(self.clock())
        live = old is not None and not old.get("deleted")
        previous = json.loads(json.dumps(old)) if live else None
        new_state = json.loads(json.dumps(old["state"])) if live else {}
        new_meta = json.loads(json.dumps(old["metadata"])) if live else {}
        if state is None:  # as moto: a null state clears both sections
            new_state, new_meta = {}, {}
        for key in SECTIONS:
            if state is None or key not in state:
                continue
            if state[key] is None:  # AWS: "desired": null removes the whole section (moto ignores it)
                new_state.pop(key, None)
                new_meta.pop(key, None)
                continue
            sec, meta = new_state.setdefault(key, {}), new_meta.setdefault(key, {})
            _merge(sec, meta, state[key], ts)
            if not sec:
                new_state.pop(key)
                new_meta.pop(key)
        size = len(json.dumps(new_state, separators=(",", ":")).encode())
        if size > MAX_STATE_BYTES:
            raise Rejected(413, "The payload exceeds the maximum size allowed")

        rec = {"state": new_state, "metadata": new_meta, "version": current_version + 1, "timestamp": ts}
        self._save(thing, name, rec)

        accepted = {"state": state, "metadata": {}, "version": rec["version"], "timestamp": ts}
        for key in SECTIONS:
            if state is not None and key in state:
                accepted["metadata"][key] = _meta_of(state[key], ts)
        delta_doc = None
        if state is not None and isinstance(state.get("desired"), dict):
            delta = _restrict(self._delta(rec), state["desired"])
            if delta:
                delta_doc = {"version": rec["version"], "timestamp": ts, "state": delta,
                             "metadata": _meta_subset(new_meta.get("desired", {}), delta)}
        documents = {"previous": self._public(previous), "current": self._public(rec), "timestamp": ts}
        for doc in (accepted, delta_doc, documents):
            if doc is not None and token is not None:
                doc["clientToken"] = token
        return accepted, delta_doc, documents

    @staticmethod
    def _delta(rec):
        return delta_of(rec["state"].get("desired", {}), rec["state"].get("reported", {}))

    @staticmethod
    def _public(rec):
        if rec is None:
            return None
        return {"state": rec["state"], "metadata": rec["metadata"], "version": rec["version"]}

    def get(self, thing, payload=b"", name=None):
        token = None
        try:
            self._check_thing(thing, name)
            req = self._parse(payload, allow_empty=True)
            token = self._token(req)
            with self._lock:
                rec = self._record(thing, name)
                if rec is None or rec.get("deleted"):
                    raise Rejected(404, f"No shadow exists with name: '{thing if name is None else name}'")
                state = dict(rec["state"])
                delta = self._delta(rec)
                if delta:
                    state["delta"] = delta
                doc = {"state": state, "metadata": rec["metadata"], "version": rec["version"],
                       "timestamp": int(self.clock())}
                if token is not None:
                    doc["clientToken"] = token
                return json.loads(json.dumps(doc))
        except Rejected as e:
            return self._rejected(e, token)

    def delete(self, thing, payload=b"", name=None):
        token = None
        try:
            self._check_thing(thing, name)
            req = self._parse(payload, allow_empty=True)
            token = self._token(req)
            with self._lock:
                rec = self._record(thing, name)
                if rec is None or rec.get("deleted"):
                    raise Rejected(404, f"No shadow exists with name: '{thing if name is None else name}'")
                ts = int(self.clock())
                gone = {"state": {}, "metadata": {}, "version": rec["version"] + 1, "timestamp": ts,
                        "deleted": True}
                self._save(thing, name, gone)
                doc = {"version": gone["version"], "timestamp": ts}
                if token is not None:
                    doc["clientToken"] = token
                return doc
        except Rejected as e:
            return self._rejected(e, token)


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
