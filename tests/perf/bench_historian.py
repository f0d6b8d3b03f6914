"""Historian and dashboard: sustained ingest, disk per reading, 30-day render time, page weight.

Prints `figure: value unit` lines (tests/perf/run.py). A real Mosquitto over mutual TLS with a CA
made here, `edgeshadow historian` as its own process, simulated devices (host_tools/sim/loadgen.py)
publishing the firmware's batched telemetry at QoS 1; headless Chromium for the page.
A reading is one entry of a batch (seq, ts, 4 metric values); "values" counts metric values.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "host")]

from host_tools.cloud import certs  # noqa: E402

from host_tools.sim import loadgen
from host_tools.cloud.broker import Broker, write_state  # noqa: E402
from host_tools.history.dashboard import Dashboard  # noqa: E402
from host_tools.history.store import HistoryStore  # noqa: E402

METRICS = len(loadgen.METRICS)


def stored_readings(db):
    with HistoryStore(db, readonly=True) as s:
        return s.db.execute("SELECT count(*) FROM raw").fetchone()[0] // METRICS


def bench_ingest(tmp, offered, seconds=20, devices=20, batch=20):
    """Readings/s the historian stored while simulated devices offered `offered` readings/s."""
    ca = tmp / "ca"
    if not (ca / "ca.crt").exists():
        certs.init_ca(ca)
    with Broker(tmp / f"broker-{offered}", ca) as broker:
        state = write_state(broker)
        db = tmp / f"ingest-{offered}.sqlite"
        hist = subprocess.Popen([sys.executable, "-m", "host_tools", "historian", "--broker-state", str(state),
                                 "--db", str(db)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            for line in hist.stderr:
                if "storing into" in line:
                    break
            devs = []
            for i in range(devices):
                thing = f"bench-{i:03d}"
                if not (tmp / "devices" / thing / certs.DEVICE_CRT).exists():
                    certs.issue_device(thing, tmp / "devices" / thing, ca)
                crt, key = tmp / "devices" / thing / certs.DEVICE_CRT, tmp / "devices" / thing / certs.DEVICE_KEY
                devs.append(loadgen.SimDevice(thing, broker.host, broker.port, broker.ca_cert, crt, key).connect())
            t0 = time.monotonic()
            sent = loadgen.run_fleet(devs, offered, seconds, batch=batch, drain_timeout=120)
            published_s = time.monotonic() - t0
            total = sum(len(v) for v in sent.values())
            while stored_readings(db) < total and time.monotonic() - t0 < published_s + 120:
                time.sleep(0.2)  # the historian drains what the broker queued
            done_s = time.monotonic() - t0
            for d in devs:
                d.close()
            return total, published_s, done_s, stored_readings(db)
        finally:
            hist.send_signal(signal.SIGTERM)
            hist.wait(30)


def make_month(db, days=30, interval_s=10, things=("grid-sensor-001",)):
    """`days` of 10-second readings per thing, through the store's own ingest."""
    end = int(time.time())
    start = end - days * 86400
    n = days * 86400 // interval_s
    t0 = time.perf_counter()
    with HistoryStore(db) as s:
        for thing in things:
            msgs = []
            for b in range(0, n, 20):
                body = [loadgen.reading(q, start + q * interval_s) for q in range(b, min(b + 20, n))]
                msgs.append((f"dt/{thing}/telemetry", json.dumps(body, separators=(",", ":")).encode(), end))
                if len(msgs) == 50:
                    s.ingest(msgs)
                    msgs = []
            s.ingest(msgs + [(f"dt/{thing}/status", b'{"connected":true}', end)])
    return n * len(things), time.perf_counter() - t0


def disk_figures(db, readings):
    with HistoryStore(db) as s:
        s.db.execute("VACUUM")
        raw_bytes = os.path.getsize(db)
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        s.prune(retention_s={"raw": 0})
        s.db.execute("VACUUM")
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rolled_bytes = os.path.getsize(db)
        rows_1m = s.db.execute("SELECT count(*) FROM rollup_1m").fetchone()[0]
        rows_1h = s.db.execute("SELECT count(*) FROM rollup_1h").fetchone()[0]
        s.prune(retention_s={"raw": 0, "1m": 0})
        s.db.execute("VACUUM")
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        hourly_bytes = os.path.getsize(db)
    return raw_bytes, rolled_bytes, rows_1m, rows_1h, hourly_bytes


def page_figures(db, tmp):
    from _chromium import Chromium, DevToolsError
    with Dashboard(db) as d:
        try:
            page = Chromium(tmp).start(skip=False)
        except DevToolsError as e:
            print(f"# Chromium cannot run here: {e}")
            return None
        try:
            page.navigate(d.url)
            page.wait_for("document.querySelectorAll('#fleet tbody tr[data-thing]').length === 1")
            page.evaluate("document.querySelector('#fleet tbody tr[data-thing]').click()")
            page.wait_for("document.body.dataset.loaded")
            weight = page.evaluate("""(() => { let t = 0, b = 0;
                for (const e of performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')))
                    { t += e.transferSize; b += e.decodedBodySize; } return [t, b]; })()""")
            times = []
            for _ in range(5):
                for span in ("3600", "2592000"):  # away and back: every 30-day load is a fresh one
                    ms = page.evaluate("""new Promise(res => { const before = document.body.dataset.loaded;
                        const t0 = performance.now();
                        document.querySelector('#ranges button[data-span="%s"]').click();
                        const iv = setInterval(() => { if (document.body.dataset.loaded !== before) {
                            clearInterval(iv); requestAnimationFrame(() => res(performance.now() - t0)); } }, 2); })""" % span,
                                       await_promise=True)
                times.append(ms)
            points = page.evaluate("document.getElementById('plot-voltage').data.slice(-1)[0].x.length")
            return weight, sorted(times)[len(times) // 2], points
        finally:
            page.close()


def main():
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        month_db = tmp / "month.sqlite"
        n, secs = make_month(month_db)
        print(f"store ingest (SQLite alone, 20-reading batches): {n / secs:.0f} readings/s ({n * METRICS / secs:.0f} values/s)")
        pw = page_figures(month_db, tmp)
        if pw:
            (transfer, decoded), render_ms, points = pw
            print(f"dashboard page weight: {transfer / 1e6:.2f} MB transferred (gzip), {decoded / 1e6:.2f} MB uncompressed")
            print(f"render 30 days of one device (4 plots, {points} hourly points each): {render_ms:.0f} ms median of 5")
        raw_b, rolled_b, r1m, r1h, hourly_b = disk_figures(month_db, n)
        print(f"disk per reading, raw + rollups: {raw_b / n:.1f} bytes ({raw_b / (n * METRICS):.1f} per value; "
              f"{n} readings, {raw_b / 1e6:.1f} MB)")
        print(f"disk per reading after rollup (raw pruned, 1 min + 1 h kept): {rolled_b / n:.1f} bytes "
              f"({r1m} 1-min and {r1h} hourly rows, {rolled_b / 1e6:.2f} MB)")
        print(f"disk per reading, hourly rollups alone: {hourly_b / n:.2f} bytes ({hourly_b / 1e3:.0f} kB for 30 days)")
        for offered in (4600, 20000):
            total, pub_s, done_s, stored = bench_ingest(tmp, offered)
            print(f"sustained ingest, offered {offered} readings/s by 20 simulated devices over MQTT/TLS: "
                  f"{stored / done_s:.0f} readings/s stored ({stored}/{total} in {done_s:.1f} s; publishing took {pub_s:.1f} s)")


if __name__ == "__main__":
    main()
