"""Reading the historian's file: time series, alert spans, the fleet at a glance, exports.

Functions take a HistoryStore (usually opened read-only) and return plain data, for
`edgeshadow history` and the dashboard alike. Times are unix seconds.
"""
import datetime
import json
import re
import time

from host_tools.errors import EdgeshadowError
from host_tools.cloud.fleet import Fleet

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Which table answers a window: raw up to 6 h, 1-minute rollups up to 7 days, hourly beyond.
AUTO_RESOLUTION = ((6 * 3600, "raw"), (7 * 86400, "1m"))


def parse_span(text):
    """'15m', '1h', '30d' -> seconds; EdgeshadowError naming the text otherwise."""
    m = _SPAN.match(str(text).strip())
    if not m:
        raise EdgeshadowError(f"{text!r} is not a duration (examples: 90s, 15m, 1h, 30d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_time(text, now=None, what="--since"):
    """A duration back from now ('1h') or an ISO 8601 time ('2026-12-01T08:00:00Z'; without a
    zone: UTC) -> unix seconds."""
    now = time.time() if now is None else now
    text = str(text).strip()
    if _SPAN.match(text):
        return now - parse_span(text)
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EdgeshadowError(f"{what} {text!r}: give a duration back from now (1h, 30d) or an ISO "
                              f"time (2026-12-01T08:00:00Z)")
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def pick_resolution(since, until):
    span = until - since
    for limit, res in AUTO_RESOLUTION:
        if span <= limit:
            return res
    return "1h"


def things(store):
    return [r[0] for r in store.db.execute("SELECT name FROM things ORDER BY name")]


def metrics_of(store, thing):
    return [r[0] for r in store.db.execute(
        "SELECT m.name FROM metrics m WHERE m.id IN (SELECT DISTINCT metric_id FROM rollup_1h WHERE "
        "thing_id = (SELECT id FROM things WHERE name = ?)) ORDER BY m.name", (thing,))]


def _ids(store, thing, metric):
    tid = store._id("things", thing, create=False)
    if tid is None:
        raise EdgeshadowError(f"the historian has nothing from {thing!r} "
                              f"(it knows: {', '.join(things(store)) or 'no device yet'})")
    mid = store._id("metrics", metric, create=False) if metric else None
    if metric and mid is None:
        raise EdgeshadowError(f"{thing} has no metric {metric!r} in the historian "
                              f"(it has: {', '.join(metrics_of(store, thing)) or 'none'})")
    return tid, mid


def series(store, thing, metric, since, until, resolution="auto"):
    """{"resolution", "t", "v", "min", "max", "n"} of one metric in [since, until]. Raw rows give
    v only (a failed read is a None, a gap in a plot); rollups give the mean as v plus min/max/n."""
    tid, mid = _ids(store, thing, metric)
    res = pick_resolution(since, until) if resolution == "auto" else resolution
    if res == "raw":
        rows = store.db.execute("SELECT ts, value FROM raw WHERE thing_id = ? AND metric_id = ? AND "
                                "ts >= ? AND ts <= ? ORDER BY ts, seq", (tid, mid, since, until)).fetchall()
        return {"resolution": res, "t": [r[0] for r in rows], "v": [r[1] for r in rows]}
    if res not in ("1m", "1h"):
        raise EdgeshadowError(f"resolution {res!r}: use raw, 1m, 1h or auto")
    step = 60 if res == "1m" else 3600
    rows = store.db.execute(f"SELECT bucket, vsum / n, vmin, vmax, n FROM rollup_{res} WHERE thing_id = ? "
                            "AND metric_id = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket",
                            (tid, mid, since - step + 1, until)).fetchall()
    return {"resolution": res, "t": [r[0] for r in rows], "v": [r[1] for r in rows],
            "min": [r[2] for r in rows], "max": [r[3] for r in rows], "n": [r[4] for r in rows]}


def readings(store, thing, metric=None, since=0, until=None):
    """Raw rows (ts, seq, metric, value, status) of a thing, oldest first, for exports."""
    tid, mid = _ids(store, thing, metric)
    until = time.time() + 86400 if until is None else until
    sql = ("SELECT r.ts, r.seq, m.name, r.value, r.status FROM raw r JOIN metrics m ON m.id = r.metric_id "
           "WHERE r.thing_id = ? AND r.ts >= ? AND r.ts <= ?")
    args = [tid, since, until]
    if mid is not None:
        sql += " AND r.metric_id = ?"
        args.append(mid)
    return store.db.execute(sql + " ORDER BY r.ts, r.seq, m.name", args).fetchall()


def last_reading(store, thing, metric):
    """(ts, value) of the newest stored value of a metric, or None."""
    tid, mid = _ids(store, thing, metric)
    return store.db.execute("SELECT ts, value FROM raw WHERE thing_id = ? AND metric_id = ? AND value IS NOT "
                            "NULL ORDER BY ts DESC, seq DESC LIMIT 1", (tid, mid)).fetchone()


def alert_spans(store, thing, since, until):
    """[{"metric", "rule", "severity", "start", "end" (None: still active), "reason"}] overlapping
    the window, from the raised/cleared events (ordered by the device's seq)."""
    tid, _ = _ids(store, thing, None)
    rows = store.db.execute("SELECT metric, rule, severity, state, ts, reason FROM alerts WHERE thing_id = ? "
                            "AND ts <= ? ORDER BY coalesce(seq, 0), ts", (tid, until)).fetchall()
    open_, spans = {}, []
    for metric, rule, severity, state, ts, reason in rows:
        key = (metric, rule)
        if state == "raised" and key not in open_:
            open_[key] = {"metric": metric, "rule": rule, "severity": severity, "start": ts, "end": None,
                          "reason": reason}
        elif state == "cleared" and key in open_:
            span = open_.pop(key)
            span["end"] = ts
            spans.append(span)
    spans.extend(open_.values())
    return sorted((s for s in spans if s["end"] is None or s["end"] >= since), key=lambda s: s["start"])


def _alerts_after(store, thing, ts, limit=500):
    rows = store.db.execute("SELECT metric, rule, severity, state, value, ts, reason FROM (SELECT * FROM alerts "
                            "WHERE thing_id = (SELECT id FROM things WHERE name = ?) AND ts > ? "
                            "ORDER BY coalesce(seq, 0) DESC, ts DESC LIMIT ?) ORDER BY coalesce(seq, 0), ts",
                            (thing, -1 if ts is None else ts, limit)).fetchall()
    keys = ("metric", "rule", "severity", "state", "value", "ts", "reason")
    return [json.dumps(dict(zip(keys, r))).encode() for r in rows]


def fleet_snapshot(store, now=None, stale_after_s=120.0, prefix="dt"):
    """The monitor's fleet view (host_tools.cloud.fleet.Fleet.snapshot) rebuilt from what the
    historian kept per device: the last shadow document, the alert events after it, the last
    telemetry batch and the link status, each folded at the wall time it arrived; plus
    "last_seen" (unix time) and "reported" (the last reported state, heap and extras as sent)."""
    now = time.time() if now is None else now
    clock = [now]
    fleet = Fleet(stale_after_s=stale_after_s, prefix=prefix, clock=lambda: clock[0])
    latest = {}
    for thing, kind, wall, topic, payload in store.db.execute(
            "SELECT t.name, l.kind, l.wall, l.topic, l.payload FROM latest l JOIN things t ON t.id = l.thing_id"):
        latest.setdefault(thing, {})[kind] = (wall, topic, payload)
    seen = {}
    for thing, kinds in sorted(latest.items()):
        seen[thing] = max(w for w, _, _ in kinds.values())
        shadow_ts = None
        if "shadow" in kinds:
            clock[0] = kinds["shadow"][0]
            fleet.handle(*kinds["shadow"][1:])
            shadow_ts = fleet.devices[thing].reported_ts
        for event in _alerts_after(store, thing, shadow_ts):
            fleet.handle(f"{prefix}/{thing}/alerts", event)
        for kind in ("telemetry", "status"):
            if kind in kinds:
                clock[0] = kinds[kind][0]
                fleet.handle(*kinds[kind][1:])
        clock[0] = seen[thing]
        fleet.handle(f"{prefix}/{thing}/telemetry", b"[]")  # last seen: the newest of them
    clock[0] = now
    snap = fleet.snapshot()
    for thing, d in snap["devices"].items():
        d["last_seen"] = seen.get(thing)
        shadow = store.db.execute("SELECT reported FROM shadows WHERE thing_id = (SELECT id FROM things WHERE "
                                  "name = ?) ORDER BY version DESC LIMIT 1", (thing,)).fetchone()
        d["reported"] = json.loads(shadow[0]) if shadow else None
    return snap
