"""The AWS IoT Device Shadow document model, without MQTT (host_tools.cloud.shadow_service serves it).

`ShadowStore.update(thing, payload)`, `.get(...)` and `.delete(...)` take the request bytes a
client publishes and return the documents AWS would publish (accepted or rejected, delta, documents), with the same error codes and messages
(https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html).
Shadows persist as one JSON file each under `state_dir`, written to a temporary file and renamed.

Choices where AWS's documentation is silent (and what moto does, which the tests compare against):
- `/update/delta` is published when an update carries `desired` and the resulting delta has
  differences in the fields that update touched; it holds only those fields. A GET returns the
  whole delta.
- Deleting a shadow bumps its version; a shadow made again continues from there (AWS: "the version
  number of the new device shadow document will follow that of the deleted one"). As moto.
- `{"state": null}` clears both sections (as moto).
Where moto 5.2.5 differs from AWS's documentation we follow AWS (tests/host/test_shadow_service.py):
`"desired": null` removes the whole section (moto ignores it); a nested object whose fields all
match is not in the delta (moto lists it as {}); JSON true differs from 1 (moto compares with ==).
Not modelled: 429 (more than 10 requests in flight): this service answers each request before
reading the next, so none is ever in flight; nor AWS's 20 requests per second per thing (429), which
the benchmarks exceed on purpose.

Bounds (issue 13). AWS IoT's quotas bound a shadow (8 KB of state, names of 64 characters) but
document no number of named shadows per thing. Here a device can write only its own thing's topics,
so its own shadows are what it could fill the disk with: a thing keeps at most MAX_NAMED_SHADOWS named
shadows (deleted ones included: their files keep the version count); creating one more is refused
with 400 (a local limit, not AWS's). Memory: a request for a shadow that does not exist is not
cached, and with a state_dir at most MAX_CACHED records are held (least recently used dropped; the
files are the truth).
"""
import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from host_tools.cloud.shadow_doc import delta_of, depth, merge, meta_of, meta_subset, restrict  # JSON algebra
from host_tools.errors import EdgeshadowError

MAX_STATE_BYTES = 8 * 1024   # desired + reported, metadata excluded
MAX_DEPTH = 6                # levels inside desired or reported
MAX_TOKEN_BYTES = 64
MAX_PAYLOAD_BYTES = 128 * 1024  # an MQTT message to AWS IoT
MAX_NAMED_SHADOWS = 1000     # per thing; a local limit (see the module docstring)
MAX_CACHED = 10_000          # records held in memory when they are also on disk


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")
SECTIONS = ("desired", "reported")
_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:-")


class Rejected(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def is_rejected(doc):
    return doc is not None and "code" in doc and "message" in doc


def _checked_state(req):
    """The request's state node, or Rejected with AWS's code and message."""
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
        if value is not None and depth(value) > MAX_DEPTH:
            raise Rejected(400, f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")
    version = req.get("version")
    if "version" in req and (isinstance(version, bool) or not isinstance(version, int)):
        raise Rejected(400, "Invalid version")
    return state


def _updated(live, state, ts):
    """(state, metadata) after applying the update's `state` to the live record (or None)."""
    new_state = json.loads(json.dumps(live["state"])) if live else {}
    new_meta = json.loads(json.dumps(live["metadata"])) if live else {}
    if state is None:  # as moto: a null state clears both sections
        return {}, {}
    for key in SECTIONS:
        if key not in state:
            continue
        if state[key] is None:  # AWS: "desired": null removes the whole section (moto ignores it)
            new_state.pop(key, None)
            new_meta.pop(key, None)
            continue
        sec, meta = new_state.setdefault(key, {}), new_meta.setdefault(key, {})
        merge(sec, meta, state[key], ts)
        if not sec:
            new_state.pop(key)
            new_meta.pop(key)
    return new_state, new_meta


# -- the model ----------------------------------------------------------------------------------

class ShadowStore:
    """Shadows keyed by (thing, shadow name or None), persisted under state_dir if given."""

    def __init__(self, state_dir=None, clock=time.time):
        self.state_dir = Path(state_dir) if state_dir else None
        self.clock = clock
        self._records = OrderedDict()  # (thing, name) -> record; LRU order when persisted
        self._lock = threading.Lock()

    # records: {"state": {...}, "metadata": {...}, "version": n, "timestamp": t, "deleted": bool}
    def _path(self, thing, name):
        return self.state_dir / (f"{thing}.json" if name is None else f"{thing}/{name}.json")

    def _record(self, thing, name):
        key = (thing, name)
        if key in self._records:
            self._records.move_to_end(key)
            return self._records[key]
        rec = None
        if self.state_dir:
            path = self._path(thing, name)
            if path.exists():
                try:
                    rec = json.loads(path.read_text())
                except ValueError as e:
                    raise EdgeshadowError(f"shadow file {path} is not valid JSON ({e})")
        if rec is not None:  # a miss is not cached: asking for any name costs no memory
            self._cache(key, rec)
        return rec

    def _cache(self, key, rec):
        self._records[key] = rec
        self._records.move_to_end(key)
        while self.state_dir and len(self._records) > MAX_CACHED:
            self._records.popitem(last=False)

    def _named_count(self, thing):
        """How many named shadows (deleted ones included) the thing has."""
        if self.state_dir:
            folder = self.state_dir / thing
            return sum(1 for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else 0
        return sum(1 for t, n in self._records if t == thing and n is not None)

    def _save(self, thing, name, rec):
        self._cache((thing, name), rec)
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
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Rejected(413, "The payload exceeds the maximum size allowed")
        try:
            doc = json.loads(text, parse_constant=_no_constant)  # NaN, Infinity: not JSON
        except RecursionError:
            raise Rejected(400, f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")
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
        for what, value, most in (("thing name", thing, 128), ("shadow name", name, 64)):  # AWS's lengths
            if value is not None and not (0 < len(value) <= most and set(value) <= _NAME_OK):
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
        state = _checked_state(req)
        old = self._record(thing, name)
        if old is None and name is not None and self._named_count(thing) >= MAX_NAMED_SHADOWS:
            raise Rejected(400, f"Too many named shadows: thing '{thing}' has {MAX_NAMED_SHADOWS}, "
                                "the local service's limit")
        current_version = old["version"] if old else 0
        if "version" in req and req["version"] != current_version:
            raise Rejected(409, "Version conflict")
        ts = int(self.clock())
        live = old is not None and not old.get("deleted")
        previous = json.loads(json.dumps(old)) if live else None
        new_state, new_meta = _updated(old if live else None, state, ts)
        size = len(json.dumps(new_state, separators=(",", ":")).encode())
        if size > MAX_STATE_BYTES:
            raise Rejected(413, "The payload exceeds the maximum size allowed")
        rec = {"state": new_state, "metadata": new_meta, "version": current_version + 1, "timestamp": ts}
        self._save(thing, name, rec)
        accepted = {"state": state, "metadata": {}, "version": rec["version"], "timestamp": ts}
        for key in SECTIONS:
            if state is not None and key in state:
                accepted["metadata"][key] = meta_of(state[key], ts)
        delta_doc = None
        if state is not None and isinstance(state.get("desired"), dict):
            delta = restrict(self._delta(rec), state["desired"])
            if delta:
                delta_doc = {"version": rec["version"], "timestamp": ts, "state": delta,
                             "metadata": meta_subset(new_meta.get("desired", {}), delta)}
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

    def _existing(self, thing, name):
        rec = self._record(thing, name)
        if rec is None or rec.get("deleted"):
            raise Rejected(404, f"No shadow exists with name: '{thing if name is None else name}'")
        return rec

    def _on_existing(self, thing, payload, name, answer):
        """A get or delete: the request checked, then answer(record) under the lock, or Rejected."""
        token = None
        try:
            self._check_thing(thing, name)
            token = self._token(self._parse(payload, allow_empty=True))
            with self._lock:
                doc = answer(self._existing(thing, name))
            if token is not None:
                doc["clientToken"] = token
            return doc
        except Rejected as e:
            return self._rejected(e, token)

    def get(self, thing, payload=b"", name=None):
        def answer(rec):
            state = dict(rec["state"])
            delta = self._delta(rec)
            if delta:
                state["delta"] = delta
            return json.loads(json.dumps({"state": state, "metadata": rec["metadata"], "version": rec["version"],
                                          "timestamp": int(self.clock())}))
        return self._on_existing(thing, payload, name, answer)

    def delete(self, thing, payload=b"", name=None):
        def answer(rec):
            ts = int(self.clock())
            gone = {"state": {}, "metadata": {}, "version": rec["version"] + 1, "timestamp": ts, "deleted": True}
            self._save(thing, name, gone)
            return {"version": gone["version"], "timestamp": ts}
        return self._on_existing(thing, payload, name, answer)
