# net.forwarder + net.connection over the fake broker: spool records go out in order, readings
# batched under the byte limit, alerts alone, acknowledged on PUBACK, re-sent after a reconnect.
import asyncio
import json
import os

from _helpers import tmpdir
from _net_fakes import FakeBroker, Opener, run, until, shut
from net.backoff import Backoff
from net.connection import Connection, topic_matches
from net.forwarder import Forwarder, with_seq
from net.mqtt import MQTTClient
from store.spool import Spool, KIND_READING, KIND_ALERT


def rm_tree(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def setup(d, op, **kw):
    c = MQTTClient("thing-1", "broker", 8883, opener=op, timeout=2, keepalive=0)
    conn = Connection(c, backoff=Backoff(base=0.01, cap=0.05, floor=0.01), log=lambda m: None)
    sp = Spool(d, 16384)
    fw = Forwarder(sp, conn, "dt/thing-1/telemetry", "dt/thing-1/alerts", log=lambda m: None, **kw)
    return conn, sp, fw


def test_with_seq_adds_the_sequence_number_first():
    assert with_seq(7, b'{"v":1}') == b'{"seq":7,"v":1}'
    assert with_seq(8, b"{}") == b'{"seq":8}'
    assert json.loads(with_seq(9, b'{ "a": [1, 2]}')) == {"seq": 9, "a": [1, 2]}


def test_topic_filters_match_like_mqtt():
    assert topic_matches("$aws/things/t/shadow/#", "$aws/things/t/shadow/update/delta")
    assert topic_matches("dt/+/alerts", "dt/t/alerts")
    assert not topic_matches("dt/+/alerts", "dt/t/x/alerts")
    assert not topic_matches("dt/a", "dt/a/b")


def test_backlog_batched_in_order_alerts_alone_and_acked():
    async def main():
        d = tmpdir()
        op = Opener()
        conn, sp, fw = setup(d, op, batch_max=4, rate=0)
        for i in range(6):
            sp.append(KIND_READING, b'{"v":%d}' % i)
        sp.append(KIND_ALERT, b'{"alert":"over_voltage"}')
        sp.append(KIND_READING, b'{"v":6}')
        tasks = [asyncio.create_task(conn.run()), asyncio.create_task(fw.run())]
        await until(lambda: sp.backlog == 0)
        pubs = op.brokers[0].publishes()
        assert [(t, json.loads(p)) for t, pid, p, dup in pubs] == [
            ("dt/thing-1/telemetry", [{"seq": 1, "v": 0}, {"seq": 2, "v": 1}, {"seq": 3, "v": 2}, {"seq": 4, "v": 3}]),
            ("dt/thing-1/telemetry", [{"seq": 5, "v": 4}, {"seq": 6, "v": 5}]),
            ("dt/thing-1/alerts", {"seq": 7, "alert": "over_voltage"}),
            ("dt/thing-1/telemetry", [{"seq": 8, "v": 6}]),
        ]
        assert all(pid is not None for t, pid, p, dup in pubs)  # QoS1
        await shut(conn, *tasks)
        rm_tree(d)
    run(main())


def test_batches_stay_under_the_byte_limit():
    async def main():
        d = tmpdir()
        op = Opener()
        conn, sp, fw = setup(d, op, batch_max=100, batch_bytes=300, rate=0)
        for i in range(30):
            sp.append(KIND_READING, b'{"v":%d,"pad":"0123456789012345678901234567890123456789"}' % i)
        tasks = [asyncio.create_task(conn.run()), asyncio.create_task(fw.run())]
        await until(lambda: sp.backlog == 0)
        pubs = op.brokers[0].publishes()
        assert len(pubs) > 5 and all(len(p) <= 300 for t, pid, p, dup in pubs)
        seqs = [r["seq"] for t, pid, p, dup in pubs for r in json.loads(p)]
        assert seqs == list(range(1, 31))
        await shut(conn, *tasks)
        rm_tree(d)
    run(main())


def test_rate_limit_spaces_publishes():
    async def main():
        d = tmpdir()
        op = Opener()
        conn, sp, fw = setup(d, op, batch_max=1, rate=20)  # 50 ms apart
        for i in range(5):
            sp.append(KIND_READING, b"{}")
        tasks = [asyncio.create_task(conn.run()), asyncio.create_task(fw.run())]
        await conn.wait_up(2)
        from compat import ticks_ms, ticks_diff  # time.time() is float32 on the ESP32-like runtime
        start = ticks_ms()
        await until(lambda: sp.backlog == 0)
        assert ticks_diff(ticks_ms(), start) >= 180  # 4 gaps of 50 ms: a lower bound, never load-flaky
        await shut(conn, *tasks)
        rm_tree(d)
    run(main())


def test_unacked_records_survive_a_broken_link_and_arrive_after_reconnect():
    async def main():
        d = tmpdir()
        op = Opener(lambda: FakeBroker(ack_publish=False))
        conn, sp, fw = setup(d, op, batch_max=2, rate=0)
        subs = []
        conn.subscribe("$aws/things/thing-1/shadow/update/delta", lambda t, p, r: subs.append(t))
        hooks = []

        async def hook():
            hooks.append(conn.client.connected)
        conn.on_connect(hook)
        tasks = [asyncio.create_task(conn.run()), asyncio.create_task(fw.run())]
        for i in range(4):
            sp.append(KIND_READING, b'{"v":%d}' % i)
            fw.kick()
        await until(lambda: op.brokers and len(op.brokers[0].publishes()) == 2)
        assert sp.backlog == 4            # nothing acknowledged yet
        op.factory = FakeBroker           # the next broker acknowledges
        op.fail = 2                       # and the first two reconnects are refused
        op.brokers[0].hang_up()
        # the re-sent records can be acknowledged before the reconnect's subscriptions and hooks
        # finish: wait for both
        await until(lambda: sp.backlog == 0 and conn.connects == 2)
        assert len(op.brokers) == 2 and hooks == [True, True]
        pubs = op.brokers[1].publishes()
        assert [dup for t, pid, p, dup in pubs] == [True, True]
        seqs = [r["seq"] for t, pid, p, dup in pubs for r in json.loads(p)]
        assert seqs == [1, 2, 3, 4]
        kinds = [f for f, b in op.brokers[1].packets()]
        assert kinds[0] == 0x10 and 0x82 in kinds  # CONNECT, then the subscription again
        await shut(conn, *tasks)
        rm_tree(d)
    run(main())


def test_a_memory_error_while_batching_means_smaller_batches_not_a_stopped_forwarder():
    # issue 13's soak: after a reboot with a long backlog on a fragmented heap, building a batch
    # raised MemoryError and took the whole application down
    async def main():
        d = tmpdir()
        op = Opener()
        conn, sp, fw = setup(d, op)
        for i in range(30):
            sp.append(KIND_READING, b'{"i":%d}' % i)
        peek, fails = sp.peek, [2]

        def tight_peek(n=1, start=0):
            if fails[0]:
                fails[0] -= 1
                raise MemoryError("memory allocation failed")
            return peek(n, start)
        sp.peek = tight_peek
        task = asyncio.create_task(conn.run())
        ftask = asyncio.create_task(fw.run())
        await until(lambda: sp.backlog == 0)
        assert fw.batch_max == 5 and not ftask.done()
        seqs = [json.loads(p)[0]["seq"] for t, _, p, _ in op.brokers[0].publishes() if t.endswith("telemetry")]
        assert seqs[0] == 1
        ftask.cancel()
        await shut(conn, task)
        rm_tree(d)
    run(main())
