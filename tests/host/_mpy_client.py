# Runs the firmware's net modules inside .venv/bin/micropython against a broker, for the host tests
# and benchmarks: `micropython _mpy_client.py <job.json>`. Prints one line per event, flushed:
#   READY / CONNECTED / REFUSED <why> / APPENDED <seq> / ACKED <seq..> / STATS <json> / DONE
import sys
import json
import time
import asyncio

from net import tls
from net.backoff import Backoff
from net.connection import Connection
from net.forwarder import Forwarder
from net.mqtt import MQTTClient
from net.shadow_client import ShadowClient
from store import write_atomic
from store.spool import Spool, KIND_READING, KIND_ALERT


def out(*a):
    print(*a)


def make_client(job):
    ctx = tls.load_context(job["ca"], job["cert"], job["key"]) if job.get("check_dates", True) else \
        tls.context(tls.read_der(job["ca"], "root CA"), tls.read_der(job["cert"], "device certificate"),
                    tls.read_der(job["key"], "device key"))
    return MQTTClient(job["thing"], job["host"], job["port"], ssl_context=ctx,
                      server_hostname=job.get("server_hostname", "localhost"),
                      keepalive=job.get("keepalive", 30), timeout=job.get("timeout", 10),
                      max_inflight=job.get("max_inflight", 20))


async def do_connect(job):
    """One attempt; the line says how it went."""
    try:
        c = make_client(job)
        await c.connect()
    except Exception as e:
        out("REFUSED", tls.explain(e, job.get("server_hostname", "localhost")))
        return
    out("CONNECTED")
    await c.publish("dt/%s/telemetry" % job["thing"], b'[{"seq":0,"probe":1}]', qos=1)
    await c.disconnect()


async def do_stream(job):
    """Sample every `interval` s into the spool; forward it; alerts and a shadow report on request.
    wait_up_first: the first sample waits for the first connect."""
    thing = job["thing"]
    sp = Spool(job["spool"], job.get("max_bytes", 65536))
    out("SPOOL torn=%d backlog=%d" % (sp.torn, sp.backlog))
    backoff = Backoff(base=job.get("backoff_base", 1), cap=job.get("backoff_cap", 120),
                      floor=job.get("backoff_floor", 1))
    conn = Connection(make_client(job), backoff=backoff, log=lambda m: out("LOG", m))
    fw = Forwarder(sp, conn, "dt/%s/telemetry" % thing, "dt/%s/alerts" % thing,
                   batch_max=job.get("batch_max", 20), log=lambda m: out("LOG", m))
    shadow = ShadowClient(conn, thing, lambda s, v: out("DELTA", json.dumps(s), v) or s,
                          log=lambda m: out("LOG", m))
    tasks = [asyncio.create_task(conn.run()), asyncio.create_task(fw.run())]
    if job.get("wait_up_first"):
        await conn.wait_up()
    n = job.get("readings", 5)
    for i in range(n):
        seq = sp.append(KIND_READING, json.dumps({"ts": time.time(), "i": i, "voltage": 23000 + i}).encode())
        out("APPENDED", seq)
        if i in job.get("alerts_at", ()):
            seq = sp.append(KIND_ALERT, json.dumps({"event": "raised", "rule": "voltage_range", "i": i}).encode())
            out("APPENDED", seq)
            fw.kick(urgent=True)
        else:
            fw.kick()
        if i == job.get("report_at", -1):
            await conn.wait_up()
            doc = await shadow.report({"spool": {"backlog": sp.backlog, "dropped": sp.dropped}, "i": i})
            out("REPORTED", doc.get("version"))
        await asyncio.sleep(job.get("interval", 0.2))
    deadline = time.time() + job.get("drain_s", 30)
    while sp.backlog and time.time() < deadline:
        await asyncio.sleep(0.05)
    out("STATS", json.dumps({"backlog": sp.backlog, "published": fw.published, "connects": conn.connects}))
    for t in tasks:
        t.cancel()
    await conn.client.disconnect()


async def do_bench(job):
    """QoS1 publishes per second with the in-flight window; then single vs batched bytes."""
    c = make_client(job)
    await c.connect()
    out("CONNECTED")
    n = job.get("count", 500)
    payload = b'{"seq":1,"ts":1767225600,"voltage":23012,"current":4051,"temp_c":31.5}'
    t0 = time.ticks_ms()
    for i in range(n):
        await c.publish("dt/%s/telemetry" % job["thing"], payload, qos=1)
    while c.inflight:
        await asyncio.sleep_ms(1)
    dt = time.ticks_diff(time.ticks_ms(), t0) / 1000
    out("STATS", json.dumps({"publishes": n, "seconds": dt}))
    await c.disconnect()


def do_writer(job):
    """Append records forever (acking some, rewriting a config file atomically): a kill target."""
    sp = Spool(job["spool"], job.get("max_bytes", 262144), segment_bytes=job.get("segment_bytes", 4096))
    out("OPEN torn=%d backlog=%d next=%d head=%d" % (sp.torn, sp.backlog, sp.next_seq, sp.head))
    k = 0
    while True:
        k += 1
        seq = sp.append(KIND_READING, json.dumps({"k": k, "pad": "x" * (k % 50)}).encode())
        out("APPENDED", seq)
        if k % 7 == 0:
            acked = list(range(sp.head, min(sp.head + 5, sp.next_seq)))
            sp.ack_all(acked)
            out("ACKED", " ".join(str(s) for s in acked))
        if k % 11 == 0:
            write_atomic(job["config"], json.dumps({"thing": "t", "version": k, "interval_s": 10}))
            out("CONFIG", k)


def main():
    with open(sys.argv[1]) as f:
        job = json.loads(f.read())
    mode = job["mode"]
    if mode == "writer":
        do_writer(job)
    else:
        asyncio.run({"connect": do_connect, "stream": do_stream, "bench": do_bench}[mode](job))
    out("DONE")


main()
