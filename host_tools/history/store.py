"""The historian's SQLite file: what the fleet said, stored once, with rollups and retention.

One file (WAL, synchronous=NORMAL: a committed batch survives the process being killed).
Messages go in as (topic, payload, wall time) batches through `HistoryStore.ingest`, one
transaction per batch; nothing here touches the network (host_tools/history/historian.py feeds it).

Tables:
  raw(thing_id, metric_id, ts, seq, value, status)  one row per metric of a telemetry reading;
        primary key (thing, metric, ts, seq): a QoS 1 re-send carries the same seq and ts, so
        INSERT OR IGNORE stores it once. A failed read is value NULL with its status.
  rollup_1m / rollup_1h(thing_id, metric_id, bucket, vmin, vmax, vsum, n)  kept by a trigger on
        raw, so a duplicate (ignored) never counts twice; a mean is vsum / n.
  alerts   alert events (edge.alerts), unique by (thing, seq).
  shadows  reported state from `$aws/things/<t>/shadow/update/documents`, by (thing, version).
  latest   per thing the newest telemetry batch, shadow document and link status as received,
           folded by host_tools.cloud.fleet.Fleet for the dashboard's fleet view.
"""
import json
import sqlite3
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError

NO_SEQ = -1       # a reading without "seq" (not from our firmware): deduplicated by ts alone
RESOLUTIONS = {"raw": None, "1m": 60, "1h": 3600}
DEFAULT_RETENTION_S = {"raw": 7 * 86400, "1m": 90 * 86400, "1h": 730 * 86400}

SCHEMA = """
CREATE TABLE IF NOT EXISTS things(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS metrics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS raw(thing_id INTEGER NOT NULL, metric_id INTEGER NOT NULL,
    ts NUMERIC NOT NULL, seq INTEGER NOT NULL, value REAL, status TEXT,
    PRIMARY KEY(thing_id, metric_id, ts, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m(thing_id INTEGER NOT NULL, metric_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL, vmin REAL, vmax REAL, vsum REAL, n INTEGER,
    PRIMARY KEY(thing_id, metric_id, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h(thing_id INTEGER NOT NULL, metric_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL, vmin REAL, vmax REAL, vsum REAL, n INTEGER,
    PRIMARY KEY(thing_id, metric_id, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts(id INTEGER PRIMARY KEY, thing_id INTEGER NOT NULL, seq INTEGER,
    ts NUMERIC, metric TEXT, rule TEXT, severity TEXT, state TEXT, value REAL, reason TEXT,
    UNIQUE(thing_id, seq));
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(thing_id, ts);
CREATE TABLE IF NOT EXISTS shadows(thing_id INTEGER NOT NULL, version INTEGER NOT NULL,
    ts NUMERIC, reported TEXT NOT NULL, PRIMARY KEY(thing_id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest(thing_id INTEGER NOT NULL, kind TEXT NOT NULL, rank REAL NOT NULL,
    wall REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY(thing_id, kind)) WITHOUT ROWID;
"""
_ROLLUP_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS raw_rollup AFTER INSERT ON raw WHEN new.value IS NOT NULL BEGIN
{}
END;"""
_ROLLUP_UPSERT = """
  INSERT INTO rollup_{name}(thing_id, metric_id, bucket, vmin, vmax, vsum, n)
  VALUES (new.thing_id, new.metric_id, CAST(new.ts / {s} AS INTEGER) * {s}, new.value, new.value, new.value, 1)
  ON CONFLICT DO UPDATE SET vmin = min(vmin, excluded.vmin), vmax = max(vmax, excluded.vmax),
                            vsum = vsum + excluded.vsum, n = n + 1;"""


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Counts:
    """What one ingest did: readings and values offered and stored, alerts, shadows, bad messages."""

    def __init__(self):
        self.readings = self.values = self.stored = self.alerts = self.shadows = self.bad = 0
        self.problems = []

    def bad_message(self, topic, why):
        self.bad += 1
        self.problems.append(f"{topic}: {why}")


class HistoryStore:
    """The SQLite file. `readonly=True` opens it for queries only (the dashboard, `history`)."""

    def __init__(self, path, readonly=False, prefix="dt"):
        self.path = Path(path)
        self.prefix = prefix
        if readonly:
            if not self.path.is_file():
                raise EdgeshadowError(f"no historian database at {self.path}",
                                      hint="start `edgeshadow historian` (or `edgeshadow broker`/`demo`)")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA + _ROLLUP_TRIGGER.format("".join(
                _ROLLUP_UPSERT.format(name=n, s=s) for n, s in RESOLUTIONS.items() if s)))
        self.db.execute("PRAGMA busy_timeout=5000")
        self._ids = {"things": {}, "metrics": {}}

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- names to ids ------------------------------------------------------------------------------
    def _id(self, table, name, create=True):
        cache = self._ids[table]
        i = cache.get(name)
        if i is None:
            row = self.db.execute(f"SELECT id FROM {table} WHERE name = ?", (name,)).fetchone()
            if row is None:
                if not create:
                    return None
                row = (self.db.execute(f"INSERT INTO {table}(name) VALUES (?)", (name,)).lastrowid,)
            i = cache[name] = row[0]
        return i

    # -- ingest ------------------------------------------------------------------------------------
    def ingest(self, messages):
        """Store a batch of (topic, payload bytes, wall time) in one transaction; returns Counts.
        A message that is not understood is counted and skipped, never half-stored."""
        counts = Counts()
        raw_rows, alert_rows, shadow_rows, latest_rows = [], [], [], []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for topic, payload, wall in messages:
                self._parse(topic, payload, wall, counts, raw_rows, alert_rows, shadow_rows, latest_rows)
            # rowcount counts the statement's own rows, not the trigger's rollup upserts
            counts.stored = self.db.executemany("INSERT OR IGNORE INTO raw VALUES (?,?,?,?,?,?)",
                                                raw_rows).rowcount
            self.db.executemany("INSERT OR IGNORE INTO alerts(thing_id, seq, ts, metric, rule, severity, "
                                "state, value, reason) VALUES (?,?,?,?,?,?,?,?,?)", alert_rows)
            self.db.executemany("INSERT OR IGNORE INTO shadows VALUES (?,?,?,?)", shadow_rows)
            self.db.executemany(
                "INSERT INTO latest VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET rank = excluded.rank, "
                "wall = excluded.wall, topic = excluded.topic, payload = excluded.payload "
                "WHERE excluded.rank >= latest.rank", latest_rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self._ids = {"things": {}, "metrics": {}}  # ids made in the rolled-back transaction
            raise
        return counts

    def _parse(self, topic, payload, wall, counts, raw_rows, alert_rows, shadow_rows, latest_rows):
        parts = topic.split("/")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            if len(parts) == 3 and parts[2] == "status":  # a plain "online"/"offline" last will
                latest_rows.append((self._id("things", parts[1]), "status", wall, wall, topic, payload))
            else:
                counts.bad_message(topic, "payload is not JSON")
            return
        if len(parts) == 3 and parts[0] == self.prefix:
            thing, kind = parts[1], parts[2]
            if kind == "telemetry":
                self._telemetry(topic, thing, body, wall, payload, counts, raw_rows, latest_rows)
            elif kind == "alerts":
                self._alert(topic, thing, body, counts, alert_rows)
            elif kind == "status":
                latest_rows.append((self._id("things", thing), "status", wall, wall, topic, payload))
            return
        if len(parts) == 6 and parts[:2] == ["$aws", "things"] and "/".join(parts[3:]) == "shadow/update/documents":
            current = body.get("current") if isinstance(body, dict) else None
            state = current.get("state") if isinstance(current, dict) else None
            reported = state.get("reported") if isinstance(state, dict) else None
            version = current.get("version") if isinstance(current, dict) else None
            if not isinstance(reported, dict) or not isinstance(version, int):
                counts.bad_message(topic, "no current.state.reported with a current.version")
                return
            tid = self._id("things", parts[2])
            ts = body.get("timestamp") if _number(body.get("timestamp")) else wall
            shadow_rows.append((tid, version, ts, json.dumps(reported, separators=(",", ":"))))
            latest_rows.append((tid, "shadow", version, wall, topic, payload))
            counts.shadows += 1
            return
        counts.bad_message(topic, "not a topic the historian stores")

    def _telemetry(self, topic, thing, body, wall, payload, counts, raw_rows, latest_rows):
        if not isinstance(body, list):
            counts.bad_message(topic, "telemetry is not a JSON array of readings")
            return
        rows, top_seq = [], NO_SEQ
        for i, r in enumerate(body):
            values = r.get("v") if isinstance(r, dict) else None
            ts, seq = (r.get("ts"), r.get("seq", NO_SEQ)) if isinstance(r, dict) else (None, None)
            if not isinstance(values, dict) or not _number(ts) or not isinstance(seq, int):
                counts.bad_message(topic, f"reading [{i}] needs a number ts, an integer seq and a v object")
                return  # the whole batch, so that nothing of it is half-stored
            status = r.get("s") if isinstance(r.get("s"), dict) else {}
            for metric in set(values) | set(status):
                v = values.get(metric)
                v = float(v) if _number(v) else None
                st = status.get(metric)
                rows.append((metric, ts, seq, v, st if isinstance(st, str) else None))
            top_seq = max(top_seq, seq)
        tid = self._id("things", thing)
        raw_rows.extend((tid, self._id("metrics", m), ts, seq, v, st) for m, ts, seq, v, st in rows)
        latest_rows.append((tid, "telemetry", top_seq if top_seq != NO_SEQ else wall, wall, topic, payload))
        counts.readings += len(body)
        counts.values += len(rows)

    def _alert(self, topic, thing, body, counts, alert_rows):
        if not isinstance(body, dict) or not isinstance(body.get("metric"), str):
            counts.bad_message(topic, "alert event is not a JSON object with a metric")
            return
        seq = body.get("seq") if isinstance(body.get("seq"), int) else None
        ts = next((body[k] for k in ("ts", "since") if _number(body.get(k))), None)
        value = body.get("value") if _number(body.get("value")) else None
        alert_rows.append((self._id("things", thing), seq, ts, body["metric"], str(body.get("rule", "")),
                           str(body.get("severity", "")), str(body.get("state", "")), value,
                           str(body.get("reason", ""))))
        counts.alerts += 1

    # -- retention ---------------------------------------------------------------------------------
    def prune(self, now=None, retention_s=None):
        """Delete what is older than each table's retention; returns rows deleted per table."""
        now = time.time() if now is None else now
        keep = dict(DEFAULT_RETENTION_S, **(retention_s or {}))
        series = self.db.execute("SELECT DISTINCT thing_id, metric_id FROM rollup_1h").fetchall()
        series += self.db.execute("SELECT DISTINCT thing_id, metric_id FROM raw WHERE value IS NULL").fetchall()
        deleted = {}
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for res, table, col in (("raw", "raw", "ts"), ("1m", "rollup_1m", "bucket"),
                                    ("1h", "rollup_1h", "bucket")):
                cut = now - keep[res]
                n = 0
                for tid, mid in set(series):  # by primary key range, not a scan of the table
                    n += self.db.execute(f"DELETE FROM {table} WHERE thing_id = ? AND metric_id = ? "
                                         f"AND {col} < ?", (tid, mid, cut)).rowcount
                deleted[table] = n
            cut = now - keep["raw"]
            deleted["alerts"] = self.db.execute("DELETE FROM alerts WHERE ts < ?", (now - keep["1h"],)).rowcount
            deleted["shadows"] = self.db.execute("DELETE FROM shadows WHERE ts < ?", (cut,)).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return deleted
