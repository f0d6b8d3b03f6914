"""The historian: the SQLite store on its own, then against a real Mosquitto (mutual TLS) with
simulated devices (host_tools/sim/loadgen.py: paho clients publishing what the firmware publishes),
including 20 SIGKILL restarts of `edgeshadow historian` during a 10-device run."""
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _broker_fixtures import local_broker  # noqa: F401  (fixture)
from host_tools.history import query as history
from host_tools.sim import loadgen
from host_tools.history.store import HistoryStore

ROOT = Path(__file__).resolve().parents[2]


def batch(*readings):
    return json.dumps(list(readings)).encode()


# ---------------------------------------------------------------- the store on its own

def test_a_resent_batch_is_stored_once_and_rolled_up_once(tmp_path):
    with HistoryStore(tmp_path / "h.sqlite") as s:
        b = batch({"seq": 7, "ts": 1_800_000_000, "v": {"voltage": 24000.0, "current": 300.5}},
                  {"seq": 8, "ts": 1_800_000_010, "v": {"voltage": 24100.0}, "s": {"current": "timeout"}})
        first = s.ingest([("dt/g-1/telemetry", b, 1.0)])
        again = s.ingest([("dt/g-1/telemetry", b, 2.0)])  # a QoS 1 re-send after a reconnect
        assert (first.readings, first.values, first.stored) == (2, 4, 4)
        assert (again.values, again.stored) == (4, 0)
        assert s.db.execute("SELECT count(*) FROM raw").fetchone()[0] == 4
        r = history.series(s, "g-1", "voltage", 1_800_000_000 - 60, 1_800_000_060, "1m")
        assert r["n"] == [2] and r["min"] == [24000.0] and r["max"] == [24100.0] and r["v"] == [24050.0]
        rows = history.readings(s, "g-1", "current", 0, 2e9)
        assert [(ts, seq, v, st) for ts, seq, _, v, st in rows] == [
            (1_800_000_000, 7, 300.5, None), (1_800_000_010, 8, None, "timeout")]
        assert history.last_reading(s, "g-1", "voltage") == (1_800_000_010, 24100.0)


def test_a_bad_batch_is_skipped_whole_and_named(tmp_path):
    with HistoryStore(tmp_path / "h.sqlite") as s:
        c = s.ingest([("dt/g-1/telemetry", batch({"seq": 1, "ts": 5, "v": {"a": 1}}, {"seq": 2, "v": {"a": 2}}), 1.0),
                      ("dt/g-1/telemetry", b"{not json", 1.0),
                      ("dt/g-1/alerts", b'{"seq": 3, "ts": 5, "metric": "a", "rule": "range", "state": "raised"}', 1.0)])
        assert c.bad == 2 and c.stored == 0 and c.alerts == 1
        assert c.problems[0] == "dt/g-1/telemetry: reading [1] needs a number ts, an integer seq and a v object"
        assert s.db.execute("SELECT count(*) FROM raw").fetchone()[0] == 0


def test_alert_spans_and_retention(tmp_path):
    t0 = 1_800_000_000
    with HistoryStore(tmp_path / "h.sqlite") as s:
        ev = lambda seq, ts, state: ("dt/g-1/alerts", json.dumps(
            {"seq": seq, "ts": ts, "metric": "voltage", "rule": "range", "severity": "critical",
             "state": state, "value": 1, "since": t0}).encode(), 1.0)
        s.ingest([ev(1, t0, "raised"), ev(2, t0 + 50, "cleared"), ev(3, t0 + 100, "raised"),
                  ev(3, t0 + 100, "raised")])
        spans = history.alert_spans(s, "g-1", t0, t0 + 200)
        assert [(x["start"], x["end"]) for x in spans] == [(t0, t0 + 50), (t0 + 100, None)]
        s.ingest([("dt/g-1/telemetry", batch(*[{"seq": 10 + i, "ts": t0 + i * 3600, "v": {"a": i}}
                                                for i in range(48)]), 1.0)])
        deleted = s.prune(now=t0 + 48 * 3600, retention_s={"raw": 86400})
        assert deleted["raw"] == 24  # the first day's readings; their rollups stay
        assert s.db.execute("SELECT count(*) FROM raw").fetchone()[0] == 24
        assert len(history.series(s, "g-1", "a", t0, t0 + 48 * 3600, "1h")["t"]) == 48


def test_time_arguments_name_what_is_wrong():
    assert history.parse_time("1h", now=10_000) == 6400
    assert history.parse_time("2026-12-01T00:00:00Z") == 1796083200
    with pytest.raises(Exception, match=r"--since 'yesterday': give a duration"):
        history.parse_time("yesterday")


# ---------------------------------------------------------------- against the real broker

class HistorianProcess:
    """`edgeshadow historian` as a subprocess; ready once it says it is subscribed."""

    def __init__(self, state, db, log):
        self.proc = subprocess.Popen([sys.executable, "-m", "host_tools", "historian", "--broker-state",
                                      str(state), "--db", str(db)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.ready = threading.Event()
        self.log = log
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            if "storing into" in line:
                self.ready.set()

    def wait_ready(self, timeout=20):
        assert self.ready.wait(timeout), "historian did not start: " + " | ".join(self.log[-5:])

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(15)


def stored_seqs(db):
    with HistoryStore(db, readonly=True) as s:
        rows = s.db.execute("SELECT t.name, r.seq, count(*) FROM raw r JOIN things t ON t.id = r.thing_id "
                            "GROUP BY r.thing_id, r.seq").fetchall()
        rolled = dict(s.db.execute("SELECT t.name, sum(n) FROM rollup_1m r JOIN things t ON t.id = r.thing_id "
                                   "GROUP BY r.thing_id").fetchall())
    return rows, rolled


def test_twenty_sigkills_lose_no_reading_and_store_no_duplicate(local_broker, tmp_path):
    state, db, log = local_broker.state_file(), tmp_path / "h.sqlite", []
    things = [f"load-{i:02d}" for i in range(10)]
    devices = [loadgen.SimDevice(t, local_broker.host, local_broker.port, local_broker.broker.ca_cert,
                                 *local_broker.device_cert(t), start_ts=1_800_000_000) for t in things]
    hist = HistorianProcess(state, db, log)
    hist.wait_ready()  # its persistent session exists from here on: the broker queues for it
    kills, rnd = [], random.Random(15)
    cur = {"h": hist, "kill_at": None}

    def between(elapsed):
        h = cur["h"]
        if len(kills) >= 20:
            return True  # done: publishing stops, the last historian drains the rest
        if not h.ready.is_set():
            return False
        if cur["kill_at"] is None:
            cur["kill_at"] = time.monotonic() + rnd.uniform(0.05, 0.5)  # somewhere in its work
        elif time.monotonic() >= cur["kill_at"]:
            assert h.stop(signal.SIGKILL) == -signal.SIGKILL
            kills.append(elapsed)
            cur["h"], cur["kill_at"] = HistorianProcess(state, db, log), None

    try:
        for d in devices:
            d.connect()
        sent = loadgen.run_fleet(devices, readings_per_s=400, seconds=120, batch=10, between=between)
    finally:
        for d in devices:
            d.close()
    try:
        assert len(kills) == 20
        cur["h"].wait_ready()
        expected = sum(len(v) for v in sent.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the last historian drains what the broker queued
            rows, _ = stored_seqs(db)
            if len(rows) >= expected:
                break
            time.sleep(0.2)
    finally:
        assert cur["h"].stop() == 0, log[-5:]
    rows, rolled = stored_seqs(db)
    got = {}
    for thing, seq, n in rows:
        got.setdefault(thing, []).append(seq)
        assert n == len(loadgen.METRICS), f"{thing} seq {seq}: {n} rows"
    assert {t: sorted(v) for t, v in got.items()} == sent
    for t in things:  # a duplicate that slipped past would have been counted in the rollups too
        assert rolled[t] == len(sent[t]) * len(loadgen.METRICS)
    assert min(len(v) for v in sent.values()) > 100


def test_history_command_exports_csv_json_and_rollups(tmp_path, capsys):
    from host_tools.cli import main as cli_main
    db = tmp_path / "h.sqlite"
    now = int(time.time())
    with HistoryStore(db) as s:
        s.ingest([("dt/g-1/telemetry", batch(*[{"seq": q, "ts": now - 600 + q * 10, "v": {"voltage": 24000.0 + q}}
                                                for q in range(30)]), 1.0)])
    assert cli_main(["history", "g-1", "--db", str(db), "--since", "1h", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "time,ts,seq,metric,value,status" and len(lines) == 31
    assert lines[-1].split(",")[2:5] == ["29", "voltage", "24029.0"]
    assert cli_main(["history", "g-1", "--db", str(db), "--since", "1h", "--metric", "voltage",
                     "--resolution", "1m", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["count"] for r in rows) == 30 and min(r["min"] for r in rows) == 24000.0
    assert cli_main(["history", "nobody", "--db", str(db)]) == 1
    assert "the historian has nothing from 'nobody' (it knows: g-1)" in capsys.readouterr().err
    assert cli_main(["history", "g-1", "--db", str(db), "--since", "last week"]) == 1
    assert cli_main(["history", "g-1", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "no historian database at" in capsys.readouterr().err


def test_the_historian_and_a_monitor_keep_their_own_sessions(local_broker, tmp_path):
    """The CN is the client id: with the monitor's certificate the historian and every
    `edgeshadow monitor` took each other's session over, again and again (the demo's monitor then
    missed what the boards sent). The historian has its own certificate."""
    from host_tools.cloud import monitor
    from host_tools.history import historian
    state = local_broker.state_file()
    log = Path(local_broker.broker.log_path)
    mark = len(log.read_text())
    db = tmp_path / "h.sqlite"
    fleet = monitor.Fleet()
    with historian.running(state, db), monitor.Subscriber(monitor.local_settings(state), fleet):
        with local_broker.probe("hist-mon-1") as dev:
            for seq in range(1, 6):
                dev.publish("dt/hist-mon-1/telemetry",
                            [{"seq": seq, "ts": 1_800_000_000 + seq, "v": {"voltage": 24000.0 + seq}}])
            deadline = time.monotonic() + 30
            while not (fleet.snapshot()["devices"].get("hist-mon-1", {}).get("values") == {"voltage": 24005.0}
                       and db.exists() and sorted(seq for name, seq, _ in stored_seqs(db)[0]
                                              if name == "hist-mon-1") == [1, 2, 3, 4, 5]):
                assert time.monotonic() < deadline, fleet.snapshot()
                time.sleep(0.1)
    taken = [line for line in log.read_text()[mark:].splitlines() if "already connected" in line]
    assert taken == [], taken
