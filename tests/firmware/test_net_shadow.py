# net.shadow_client over the fake broker playing a scripted shadow service (both runtimes).
import asyncio
import json

from _net_fakes import FakeBroker, Opener, publish_packet, run, until, shut
from net.backoff import Backoff
from net.connection import Connection
from net.mqtt import MQTTClient
from net.shadow_client import ShadowClient, ShadowError

BASE = "$aws/things/thing-1/shadow/"


class ShadowScript:
    """Answers shadow requests: `answers` maps op -> list of (suffix, body) consumed in order;
    when the list is empty, get -> accepted with `doc`, update -> accepted with a bumped version."""

    def __init__(self):
        self.version = 3
        self.desired = {"interval_s": 5}
        self.answers = {"get": [], "update": []}
        self.requests = []
        self.max_waiting = 0
        self.waiting = []
        self.hold = False

    def on_publish(self, broker, topic, payload):
        if not topic.startswith(BASE):
            return
        op = topic[len(BASE):]
        doc = json.loads(payload)
        self.requests.append((op, doc))
        self.waiting.append((broker, op, doc))
        self.max_waiting = max(self.max_waiting, len(self.waiting))
        if not self.hold:
            self.release()

    def release(self):
        while self.waiting:
            broker, op, doc = self.waiting.pop(0)
            tok = doc["clientToken"]
            if self.answers[op]:
                suffix, body = self.answers[op].pop(0)
            elif op == "get":
                suffix, body = "accepted", {"state": {"desired": self.desired, "delta": self.desired}, "version": self.version}
            else:
                self.version += 1
                suffix, body = "accepted", {"state": doc["state"], "version": self.version}
            body = dict(body)
            body["clientToken"] = tok
            broker.feed(publish_packet(BASE + op + "/" + suffix, json.dumps(body).encode(), qos=1, pid=900))


def setup(script, on_delta, **kw):
    op = Opener(lambda: FakeBroker(on_publish=script.on_publish))
    c = MQTTClient("thing-1", "broker", 8883, opener=op, timeout=2, keepalive=0)
    conn = Connection(c, backoff=Backoff(base=0.01, cap=0.05, floor=0.01), log=lambda m: None)
    sh = ShadowClient(conn, "thing-1", on_delta, log=lambda m: None,
                      backoff=Backoff(base=0.01, cap=0.02, floor=0.01), **kw)
    return op, conn, sh


def test_subscribes_gets_on_connect_and_reports_applied_delta():
    async def main():
        script = ShadowScript()
        deltas = []

        def on_delta(state, version):
            deltas.append((state, version))
            return {"interval_s": state["interval_s"]}
        op, conn, sh = setup(script, on_delta)
        task = asyncio.create_task(conn.run())
        await until(lambda: len(script.requests) >= 2)
        subs = [b for f, b in op.brokers[0].packets() if f == 0x82]
        topics = [b[4:4 + b[3]].decode() for b in subs]
        assert sorted(topics) == sorted(BASE + t for t in ("update/delta", "update/accepted", "update/rejected", "get/accepted", "get/rejected"))
        assert script.requests[0][0] == "get"
        assert deltas == [({"interval_s": 5}, 3)]
        assert script.requests[1] == ("update", {"state": {"reported": {"interval_s": 5}}, "clientToken": script.requests[1][1]["clientToken"]})
        assert len(script.requests[1][1]["clientToken"]) <= 64
        # a reconnect GETs again
        op.brokers[0].hang_up()
        await until(lambda: len(op.brokers) == 2 and len(script.requests) >= 3)
        assert script.requests[2][0] == "get"
        await shut(conn, task)
    run(main())


def test_stale_and_repeated_deltas_are_ignored():
    async def main():
        script = ShadowScript()
        script.desired = {}
        script.answers["get"] = [("accepted", {"state": {"desired": {}}, "version": 10})]
        deltas = []
        op, conn, sh = setup(script, lambda s, v: deltas.append((s, v)))
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 10)
        b = op.brokers[0]
        for v, val in ((11, 1), (11, 1), (9, 2), (12, 3)):
            b.feed(publish_packet(BASE + "update/delta", json.dumps({"state": {"x": val}, "version": v}).encode()))
        await until(lambda: len(deltas) >= 2)
        await asyncio.sleep(0.05)
        assert deltas == [({"x": 1}, 11), ({"x": 3}, 12)]
        await shut(conn, task)
    run(main())


def test_a_delta_too_large_for_the_heap_is_refused_for_its_version_once():
    """The MQTT client read it through its buffer and dropped it (mqtt_packets.Skipped, with the
    version it found on the way): on_too_large answers it, reported once; a GET's answer that was
    dropped, or the same delta again, is not answered twice."""
    from net.mqtt_packets import Skipped

    async def main():
        script = ShadowScript()
        script.desired = {}
        script.answers["get"] = [("accepted", {"state": {"desired": {}}, "version": 10})]
        calls = []

        def too_large(version, n):
            calls.append((version, n))
            return {"config_error": {"version": version, "problems": ["too large"]}}
        op, conn, sh = setup(script, lambda s, v: None, on_too_large=too_large)
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 10)
        head = memoryview(b"head")
        sh._on_message(BASE + "get/accepted", Skipped(head, 16490, 11), False)
        sh._on_message(BASE + "update/delta", Skipped(head, 11199, 11), False)
        sh._on_message(BASE + "update/delta", Skipped(head, 11199, 11), False)
        sh._on_message(BASE + "update/delta", Skipped(head, 11199, None), False)  # no version found
        await until(lambda: any(op_ == "update" for op_, _ in script.requests))
        await asyncio.sleep(0.05)
        assert calls == [(11, 11199)]
        reports = [d["state"]["reported"] for op_, d in script.requests if op_ == "update"]
        assert reports == [{"config_error": {"version": 11, "problems": ["too large"]}}]
        await shut(conn, task)
    run(main())


def test_429_backs_off_and_retries_other_codes_raise():
    async def main():
        script = ShadowScript()
        script.desired = {}
        op, conn, sh = setup(script, lambda s, v: None)
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 3)
        script.answers["update"] = [("rejected", {"code": 429, "message": "Too Many Requests"})] * 2
        doc = await sh.report({"a": 1})
        assert [o for o, d in script.requests[1:]] == ["update", "update", "update"]
        assert doc["state"] == {"reported": {"a": 1}}
        script.answers["update"] = [("rejected", {"code": 400, "message": "Missing required node: state"})]
        try:
            await sh.report({"a": 2})
        except ShadowError as e:
            assert e.code == 400 and "Missing required node" in str(e)
        else:
            raise AssertionError("400 not raised")
        await shut(conn, task)
    run(main())


def test_requests_in_flight_stay_under_the_limit():
    async def main():
        script = ShadowScript()
        script.desired = {}
        op, conn, sh = setup(script, lambda s, v: None, max_inflight=3)
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 3)
        script.hold = True
        done = []

        async def one(i):
            done.append(await sh.report({"n": i}))
        reports = [asyncio.create_task(one(i)) for i in range(10)]
        await until(lambda: len(script.waiting) == 3)
        await asyncio.sleep(0.05)
        assert len(script.waiting) == 3
        while len(done) < 10:
            script.release()
            await asyncio.sleep(0.01)
        assert script.max_waiting == 3
        assert sorted(d["state"]["reported"]["n"] for d in done) == list(range(10))
        await shut(conn, task)
    run(main())


def test_a_delta_is_applied_in_a_task_of_its_own_not_inside_the_mqtt_read_loop():
    async def main():
        applied = []

        class Conn:
            def subscribe(self, *a, **kw):
                pass

            def on_connect(self, hook):
                pass

        sc = ShadowClient(Conn(), "thing-1", lambda state, v: applied.append((state, v)) or None)
        sc._on_message(BASE + "update/delta", json.dumps({"state": {"interval_s": 7}, "version": 9}), False)
        assert applied == []           # the handler only hands it over
        for _ in range(3):
            await asyncio.sleep(0)
        assert applied == [({"interval_s": 7}, 9)]
        sc._on_message(BASE + "update/delta", json.dumps({"state": {"interval_s": 8}, "version": 9}), False)
        await asyncio.sleep(0)
        assert len(applied) == 1       # the same version again: stale, ignored
    run(main())


def test_requests_are_written_into_one_buffer_kept_for_good_and_larger_ones_still_go_out():
    """At 80 KB of heap json.dumps' growing string for a 1 KB report was refused by the fragmented
    heap: a request that fits is written into the client's own buffer; a larger one as before."""
    async def main():
        from net import shadow_client
        script = ShadowScript()
        op, conn, sh = setup(script, lambda state, version: None)
        buf = sh._out.buf
        task = asyncio.create_task(conn.run())
        await until(lambda: len(script.requests) >= 1)  # the GET on connect
        small = {"v": 1, "name": "caf\u00e9"}
        big = {"v": 2, "text": "x" * (shadow_client.TX_BUF + 100)}
        for rep in (small, big, {"v": 3}):
            await sh.report(rep)
        reports = [doc["state"]["reported"] for o, doc in script.requests if o == "update"]
        assert reports == [small, big, {"v": 3}]
        assert sh._out.buf is buf and len(buf) == shadow_client.TX_BUF
        assert b'"reported": {"v": 3}' in bytes(buf)  # the last one was written in it
        await shut(conn, task)
    run(main())


def test_a_request_is_sent_from_the_buffer_and_not_overwritten_while_its_packet_is_in_flight():
    """The packet is built in the kept buffer (no copy); a QoS1 packet not yet acknowledged may be
    re-sent after a reconnect, so the next request goes into a buffer of its own meanwhile."""
    async def main():
        script = ShadowScript()
        op = Opener(lambda: FakeBroker(on_publish=script.on_publish, ack_publish=False))
        c = MQTTClient("thing-1", "broker", 8883, opener=op, timeout=2, keepalive=0)
        conn = Connection(c, backoff=Backoff(base=0.01, cap=0.05, floor=0.01), log=lambda m: None)
        sh = ShadowClient(conn, "thing-1", lambda state, version: None, log=lambda m: None)
        buf = sh._out.buf
        task = asyncio.create_task(conn.run())
        # the GET, sent from the buffer, unacknowledged (the fake broker may see it before publish()
        # has returned its packet id: wait for both)
        await until(lambda: len(script.requests) >= 1 and sh._pid is not None)
        assert sh._pid in c.inflight
        head = bytes(buf[:buf.find(b"{")])
        assert b"\x00" + bytes([len(BASE + "get")]) + (BASE + "get").encode() in head  # the header in front
        await sh.report({"v": 1})  # the GET's packet still in flight: not written over
        assert bytes(c.inflight[script_pid(c, 0)]).endswith(bytes(buf[buf.find(b"{"):buf.find(b"}") + 1]))
        assert [o for o, d in script.requests] == ["get", "update"]
        assert script.requests[1][1]["state"] == {"reported": {"v": 1}}
        await shut(conn, task)
    run(main())


def script_pid(client, i):
    return client.pending()[i]
