"""The fleet model: MQTT messages folded into what every device last reported.

Pure (topic, payload and a clock in; no network), so it is tested without a broker; the monitor
(host_tools/cloud/monitor.py) feeds it from a paho-mqtt subscription.

Messages understood (docs/DESIGN.md, firmware/edge/shadow.py):
- `$aws/things/<t>/shadow/update/accepted` and `.../get/accepted`: {"state": {"reported": {...}}};
  `.../update/documents`: {"current": {"state": {"reported": {...}}}}. Reported state is flat
  metrics plus `timestamp`, `status` (failed reads; null entries, or a null status, read fine
  again), `alerts`, `diagnoses`, `config_version`, `fw`, `spool`, `provenance`, `units` and
  optionally `connected`.
- `<prefix>/<t>/telemetry`: a batch of readings (a list, or {"readings": [...]}); each reading a
  dict of metric -> value (plus `ts`), or {"metric": m, "value": v}.
- `<prefix>/<t>/alerts`: one event (edge.alerts) {"metric", "rule", "severity",
  "state": "raised"|"active"|"cleared", "value", "since", "reason"}.
- `$aws/events/presence/connected|disconnected/<t>` (AWS lifecycle events) and
  `<prefix>/<t>/status` ({"connected": bool} or "online"/"offline", e.g. a last will).
"""
import json
import threading
import time

from host_tools import DATA_DIR

# Keys of state.reported that are not metric values.
META_KEYS = frozenset(("timestamp", "ts", "status", "alerts", "diagnoses", "config_version", "fw", "spool",
                       "units", "connected", "provenance", "calibration", "config", "board", "sku",
                       "thing", "uptime_s", "heap_free", "heap", "rssi", "health",
                       # the firmware's own bookkeeping: spool sequence numbers, applied settings
                       "seq", "interval_s", "config_error"))
SEVERITY_ORDER = {"critical": 0, "major": 1, "warning": 2, "minor": 3, "info": 4}
DEFAULT_UNITS_FILE = DATA_DIR / "metric_units.json"


def default_units():
    try:
        return json.loads(DEFAULT_UNITS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def topics(prefix="dt"):
    """Topic filters the monitor subscribes to (all within the monitor client's ACL)."""
    return [
        "$aws/things/+/shadow/update/accepted",
        "$aws/things/+/shadow/update/documents",
        "$aws/things/+/shadow/get/accepted",
        f"{prefix}/+/telemetry",
        f"{prefix}/+/alerts",
        f"{prefix}/+/status",
    ]


def _alert_key(a):
    # the firmware keeps one alert per (metric, rule)
    return "%s/%s" % (a.get("metric", ""), a.get("rule") or a.get("id") or a.get("type") or "")


def _sort_alerts(alerts):
    return sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.get("severity"), 9), _alert_key(a)))


class Device:
    def __init__(self, thing):
        self.thing = thing
        self.values = {}
        self.units = {}
        self.alerts = {}          # alert key -> alert dict (active ones)
        self.diagnoses = []
        self.status = {}          # metric -> read status of a failed read (from the shadow)
        self.connected = None     # None: not told; then judged from last-seen age
        self.last_seen = None     # monotonic clock of the last message
        self.reported_ts = None   # device timestamp of the last report
        self.spool = {}
        self.heap = {}            # size, free, min_free (bytes) of the firmware's GC heap
        self.fw = None
        self.config_version = None
        self.provenance = {}
        self.messages = 0


class Fleet:
    """Per-device state folded from MQTT messages. Thread-safe: paho calls `handle` from its loop."""

    def __init__(self, units=None, stale_after_s=120.0, prefix="dt", clock=time.monotonic):
        self.devices = {}
        self.default_units = dict(default_units() if units is None else units)
        self.stale_after_s = stale_after_s
        self.prefix = prefix
        self.clock = clock
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.errors = []          # malformed messages seen (topic: reason), newest last, bounded

    def _device(self, thing):
        d = self.devices.get(thing)
        if d is None:
            d = self.devices[thing] = Device(thing)
        return d

    def _bad(self, topic, why):
        self.errors.append(f"{topic}: {why}")
        del self.errors[:-20]

    def handle(self, topic, payload):
        """Fold one message in; returns the thing it was about, or None if not understood."""
        parts = topic.split("/")
        try:
            body = json.loads(payload) if payload else None
        except (ValueError, UnicodeDecodeError):
            body = payload.decode("utf-8", "replace").strip() if isinstance(payload, bytes) else payload
            if not (len(parts) == 3 and parts[2] == "status"):
                self._bad(topic, "payload is not JSON")
                return None
        with self.lock:
            thing = self._dispatch(topic, parts, body)
            if thing is not None:
                d = self.devices[thing]
                d.last_seen = self.clock()
                d.messages += 1
                self.changed.set()
            return thing

    def _dispatch(self, topic, parts, body):
        if len(parts) >= 6 and parts[0] == "$aws" and parts[1] == "things" and parts[3] == "shadow":
            thing, op = parts[2], "/".join(parts[4:])
            if op == "update/documents":
                state = ((body or {}).get("current") or {}).get("state") or {}
            elif op in ("update/accepted", "get/accepted"):
                state = (body or {}).get("state") or {}
            else:
                return None
            reported = state.get("reported")
            if not isinstance(reported, dict):
                return None  # a desired-only update says nothing about the device
            # documents and get/accepted hold the whole reported state; update/accepted only the
            # part that changed
            self._apply_reported(self._device(thing), reported, whole=op != "update/accepted")
            return thing
        if len(parts) == 5 and parts[:2] == ["$aws", "events"] and parts[2] == "presence":
            d = self._device(parts[4])
            d.connected = parts[3] == "connected"
            return d.thing
        if len(parts) == 3 and parts[0] == self.prefix:
            thing, kind = parts[1], parts[2]
            if kind == "telemetry":
                return self._telemetry(topic, thing, body)
            if kind == "alerts":
                return self._alert(topic, thing, body)
            if kind == "status":
                d = self._device(thing)
                if isinstance(body, dict):
                    body = body.get("connected", body.get("state"))
                d.connected = body in (True, "online", "connected", "1", 1)
                return thing
        return None

    def _apply_reported(self, d, reported, whole=False):
        if whole:
            d.values = {}
        for key, value in reported.items():
            if key not in META_KEYS and (value is None or isinstance(value, (int, float))) \
                    and not isinstance(value, bool):
                d.values[key] = value
        if isinstance(reported.get("units"), dict):
            d.units.update(reported["units"])
        ts = reported.get("timestamp", reported.get("ts"))
        if isinstance(ts, (int, float)):
            d.reported_ts = ts
        if "alerts" in reported:
            # the shadow lists metric, rule, severity, since; the alert event said the value and
            # the limit (its "reason"): keep those for an alert that is still the same one
            old, d.alerts = d.alerts, {}
            for a in reported["alerts"] or ():
                a = a if isinstance(a, dict) else {"id": str(a)}
                key = _alert_key(a)
                seen = old.get(key, {})
                if seen.get("since", a.get("since")) == a.get("since"):
                    a = dict({k: seen[k] for k in ("value", "reason") if k in seen}, **a)
                d.alerts[key] = a
        if "status" in reported or whole:  # null entries (or a null status): read fine again
            status = reported.get("status")
            d.status = {m: v for m, v in status.items() if v is not None} if isinstance(status, dict) else {}
        if "diagnoses" in reported:
            d.diagnoses = list(reported["diagnoses"] or ())
        if isinstance(reported.get("spool"), dict):
            d.spool.update(reported["spool"])
        if isinstance(reported.get("heap"), dict):
            d.heap.update(reported["heap"])
        if "fw" in reported:
            d.fw = reported["fw"]
        if "config_version" in reported:
            d.config_version = reported["config_version"]
        if "connected" in reported and isinstance(reported["connected"], bool):
            d.connected = reported["connected"]
        for m, cfg in reported.items():
            if isinstance(cfg, dict) and isinstance(cfg.get("provenance"), dict):
                d.provenance[m] = cfg["provenance"]
        if isinstance(reported.get("provenance"), dict):
            d.provenance.update(reported["provenance"])

    def _telemetry(self, topic, thing, body):
        readings = body.get("readings", body.get("batch")) if isinstance(body, dict) else body
        if isinstance(body, dict) and readings is None:
            readings = [body]
        if not isinstance(readings, list):
            self._bad(topic, "telemetry is not a list of readings")
            return None
        d = self._device(thing)
        for r in readings:
            if not isinstance(r, dict):
                continue
            if "metric" in r and "value" in r:
                d.values[r["metric"]] = r["value"]
                continue
            # the firmware's readings are {"seq", "ts", "v": {metric: value}, "s": {metric: status}}
            values = next((r[k] for k in ("values", "v") if isinstance(r.get(k), dict)), r)
            for k, v in values.items():
                if k not in META_KEYS and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool):
                    d.values[k] = v
            if values is not r:  # the reading carries its failed reads' statuses (or none failed)
                d.status = dict(r.get("s") or r.get("status") or {})
            ts = r.get("ts", r.get("timestamp"))
            if isinstance(ts, (int, float)):
                d.reported_ts = ts
        if isinstance(body, dict) and isinstance(body.get("spool"), dict):
            d.spool.update(body["spool"])
        return thing

    def _alert(self, topic, thing, body):
        if not isinstance(body, dict):
            self._bad(topic, "alert event is not a JSON object")
            return None
        d = self._device(thing)
        key = _alert_key(body)
        if body.get("event", body.get("state")) in ("clear", "cleared", "resolved"):
            d.alerts.pop(key, None)
        else:
            d.alerts[key] = {k: v for k, v in body.items() if k not in ("event", "state")}
        return thing

    def snapshot(self):
        """{"devices": {thing: {...}}}: a JSON-able copy of what the fleet last said."""
        now = self.clock()
        out = {}
        with self.lock:
            for thing in sorted(self.devices):
                d = self.devices[thing]
                age = None if d.last_seen is None else round(now - d.last_seen, 1)
                connected = d.connected
                if connected is None:
                    connected = age is not None and age <= self.stale_after_s
                units = {m: d.units.get(m, self.default_units.get(m)) for m in d.values}
                out[thing] = {
                    "values": dict(d.values),
                    "units": {m: u for m, u in units.items() if u is not None},
                    "alerts": _sort_alerts(d.alerts.values()),
                    "diagnoses": list(d.diagnoses),
                    "status": dict(d.status),
                    "connected": bool(connected),
                    "last_seen_s": age,
                    "spool": dict(d.spool),
                    "heap": dict(d.heap),
                    "fw": d.fw,
                    "config_version": d.config_version,
                    "timestamp": d.reported_ts,
                }
                if d.provenance:
                    out[thing]["provenance"] = dict(d.provenance)
        return {"devices": out}
