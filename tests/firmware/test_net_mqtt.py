# net.mqtt against a fake broker on in-memory streams (both runtimes).
import asyncio
import struct

from _helpers import raises
from _net_fakes import FakeBroker, IntoBroker, Opener, publish_packet, run, until
from net import mqtt_packets
from net.mqtt import MQTTClient, MQTTError, MAX_PAYLOAD


def client(opener, **kw):
    return MQTTClient("thing-1", "broker", 8883, opener=opener, timeout=2, **kw)


def test_connect_packet_carries_id_keepalive_clean_flag_and_will():
    async def main():
        op = Opener()
        c = client(op, keepalive=45, clean_session=False, will=("dt/thing-1/status", b"gone", 1, True))
        await c.connect()
        first, body = op.brokers[0].packets()[0]
        assert first == 0x10
        assert body[:7] == b"\x00\x04MQTT\x04"
        assert body[7] == 0x04 | 0x08 | 0x20  # will, will qos 1, will retain; clean session off
        assert struct.unpack("!H", body[8:10])[0] == 45
        assert body[10:] == b"\x00\x07thing-1\x00\x11dt/thing-1/status\x00\x04gone"
        assert c.connected
        await c.disconnect()
        assert op.brokers[0].packets()[-1] == (0xE0, b"")
        assert not c.connected
    run(main())


def test_connack_refusal_becomes_a_clear_error():
    async def main():
        op = Opener(lambda: FakeBroker(connack=5))
        c = client(op)
        try:
            await c.connect()
        except MQTTError as e:
            assert e.code == 5
            assert "not authorised" in str(e)
        else:
            raise AssertionError("connect did not fail")
        assert not c.connected
        assert op.brokers[0].closed
    run(main())


def test_tls_requires_server_hostname():
    e = raises(ValueError, MQTTClient, "t", "h", 8883, ssl_context=object())
    assert "server_hostname" in str(e)


def test_qos0_and_qos1_publish_and_puback_tracking():
    async def main():
        op = Opener(lambda: FakeBroker(ack_publish=False))
        c = client(op)
        acked = []
        c.on_puback = lambda pid, token: acked.append((pid, token))
        await c.connect()
        assert await c.publish("dt/thing-1/telemetry", b"zero") is None
        pid = await c.publish("dt/thing-1/telemetry", b"one", qos=1, token="t1")
        assert pid == 1 and list(c.inflight) == [1]
        pubs = op.brokers[0].publishes()
        assert pubs == [("dt/thing-1/telemetry", None, b"zero", False), ("dt/thing-1/telemetry", 1, b"one", False)]
        op.brokers[0].feed(b"\x40\x02\x00\x01")  # PUBACK 1
        await until(lambda: acked)
        assert c.inflight == {} and acked == [(1, "t1")]
        await c.disconnect()
    run(main())


class _Oversized:
    """A payload that says it is one byte over 128 KB: a board could never build the real thing."""

    def __len__(self):
        return MAX_PAYLOAD + 1


def test_payload_over_128k_is_refused_before_sending():
    async def main():
        op = Opener()
        c = client(op)
        await c.connect()
        before = len(op.brokers[0].out.getvalue())
        e = raises_async = None
        try:
            await c.publish("dt/thing-1/telemetry", _Oversized(), qos=1)
        except ValueError as err:
            e = err
        assert e is not None and "128 KB" in str(e)
        assert len(op.brokers[0].out.getvalue()) == before
        assert c.inflight == {}
        await c.disconnect()
    run(main())


def test_unacknowledged_qos1_resent_with_dup_after_reconnect():
    async def main():
        op = Opener(lambda: FakeBroker(ack_publish=False))
        c = client(op)
        await c.connect()
        p1 = await c.publish("dt/thing-1/telemetry", b"a", qos=1)
        p2 = await c.publish("dt/thing-1/telemetry", b"b", qos=1)
        op.brokers[0].hang_up()
        err = await asyncio.wait_for(c.wait_down(), 2)
        assert "closed" in str(err), repr(err)
        assert c.pending() == [p1, p2]
        op.factory = FakeBroker  # the next broker acknowledges
        await c.connect()
        await until(lambda: not c.inflight)
        resent = op.brokers[1].publishes()
        assert resent == [("dt/thing-1/telemetry", p1, b"a", True), ("dt/thing-1/telemetry", p2, b"b", True)]
        assert c.inflight == {}
        await c.disconnect()
    run(main())


def test_subscribe_granted_and_refused():
    async def main():
        op = Opener()
        c = client(op)
        await c.connect()
        assert await c.subscribe("$aws/things/thing-1/shadow/update/delta", 1) == 1
        op.brokers[0].suback = 0x80
        try:
            await c.subscribe("$aws/things/other/shadow/update/delta", 1)
        except MQTTError as e:
            assert e.code == 0x80 and "other" in str(e)
        else:
            raise AssertionError("refused subscription not reported")
        await c.disconnect()
    run(main())


def test_incoming_qos1_message_is_delivered_and_acknowledged():
    async def main():
        op = Opener()
        c = client(op)
        got = []
        c.on_message = lambda t, p, r: got.append((t, bytes(p), r))
        await c.connect()
        op.brokers[0].feed(publish_packet("$aws/things/thing-1/shadow/update/delta", b'{"v":1}', qos=1, pid=77))
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [("$aws/things/thing-1/shadow/update/delta", b'{"v":1}', False)]
        await asyncio.sleep(0.01)
        assert op.brokers[0].packets()[-1] == (0x40, b"\x00\x4d")  # PUBACK 77
        await c.disconnect()
    run(main())


def test_packets_are_read_into_one_buffer_kept_for_good():
    """At 80 KB of heap a new 1.2 KB buffer per incoming packet was refused by the fragmented heap
    (13 KB free) and the link dropped: bodies that fit are read into the client's own buffer."""
    async def main():
        op = Opener(IntoBroker)
        c = client(op, rx_buf=64)
        buf = c._rx_buf
        got = []
        c.on_message = lambda t, p, r: got.append((t, bytes(p), r))
        await c.connect()
        big = b'{"big":"' + b"x" * 150 + b'"}'  # over the buffer: a buffer of its own
        for i, payload in enumerate((b'{"v":1}', big, b'{"v":22}')):
            op.brokers[0].feed(publish_packet("a/b", payload, qos=1, pid=10 + i))
        await until(lambda: len(got) == 3)
        assert got == [("a/b", b'{"v":1}', False), ("a/b", big, False), ("a/b", b'{"v":22}', False)]
        assert c._rx_buf is buf and len(buf) == 64
        assert b'{"v":22}' in bytes(buf)  # the last small packet's body is in it
        await c.disconnect()
    run(main())


def test_a_body_larger_than_the_buffer_comes_in_pieces_as_a_stream_to_the_handlers_that_take_it():
    """A 16 KB shadow document could not be read at 112 KB of heap (no 16 KB block free in the
    fragmented heap): bodies over the buffer are read in 1 KB pieces; handlers of topics under
    `chunked` parse them as a stream, others get them joined as before."""
    async def main():
        import json
        op = Opener(IntoBroker)
        c = client(op, rx_buf=64)
        c.chunked.append("$aws/")
        doc = {"state": {"desired": {"rules": [{"name": "rule-%03d" % i, "max": i} for i in range(75)]}}, "version": 7}
        raw = json.dumps(doc).encode()
        assert len(raw) > 2048
        other = {"v": "y" * 1500}  # over 1 KB: read in pieces, then joined
        got = []

        def on_message(t, p, r):
            if t.startswith("$aws/"):
                assert isinstance(p, mqtt_packets.Chunks) and len(p.parts) > 2
                got.append((t, json.load(p) == doc))  # (the parsed copy not kept: a small heap)
            else:
                got.append((t, json.loads(p) == other))
        c.on_message = on_message
        await c.connect()
        op.brokers[0].feed(publish_packet("$aws/things/t/shadow/get/accepted", raw, qos=1, pid=5))
        op.brokers[0].feed(publish_packet("other/topic", json.dumps(other).encode(), qos=1, pid=6))
        await until(lambda: len(got) == 2)
        assert got == [("$aws/things/t/shadow/get/accepted", True), ("other/topic", True)]
        await c.disconnect()
    run(main())


def test_a_body_the_heap_cannot_take_is_skipped_and_acknowledged_and_the_link_stays_up():
    """At 112 KB of heap a 16 KB shadow document (4.5 KB of rules in desired, reported, delta and
    metadata) found no room for its pieces: the link dropped, and every reconnect's GET brought the
    same document again. Now it is read through the receive buffer and dropped, acknowledged, and
    the next packet is read as usual."""
    async def main():
        op = Opener(IntoBroker)
        c = client(op, rx_buf=128)
        c.chunked.append("$aws/")
        got = []
        c.on_message = lambda t, p, r: got.append((t, bytes(p) if not isinstance(p, mqtt_packets.Skipped)
                                                   else ("skipped", len(p), p.version)))
        await c.connect()
        real = mqtt_packets.Chunks

        class NoRoom(real):
            def __init__(self, n):
                raise MemoryError("memory allocation failed, allocating 1024 bytes")
        mqtt_packets.Chunks = NoRoom
        try:
            big = (b'{"state":{"desired":{"rules":"' + b"r" * 5000 + b'"}},"metadata":{"version":1},'
                   b'"note":"\\"version\\":3,","version":1234,"timestamp":99}')
            op.brokers[0].feed(publish_packet("$aws/things/t/shadow/update/delta", big, qos=1, pid=41))
            op.brokers[0].feed(publish_packet("other/big", big, qos=1, pid=42))   # not a shadow topic
            op.brokers[0].feed(publish_packet("$aws/things/t/shadow/update/delta", b'{"version":3}', qos=1, pid=43))
            await until(lambda: len(got) == 2)
        finally:
            mqtt_packets.Chunks = real
        # the shadow's handler hears of it, with the top-level version found while it was dropped
        assert got == [("$aws/things/t/shadow/update/delta", ("skipped", 2 + len("$aws/things/t/shadow/update/delta") + 2 + len(big), 1234)),
                       ("$aws/things/t/shadow/update/delta", b'{"version":3}')]
        acks = [b for t, b in op.brokers[0].packets() if t == 0x40]
        assert acks == [b"\x00\x29", b"\x00\x2a", b"\x00\x2b"]   # all acknowledged, in order
        assert c.connected
        await c.disconnect()
    run(main())


def test_a_body_that_fits_is_a_view_of_the_given_buffer():
    async def main():
        r = IntoBroker()
        r.feed(publish_packet("t", b"hello", qos=0))
        buf = bytearray(32)
        ptype, body = await mqtt_packets.read(r, buf)
        assert ptype == 0x30 and bytes(body) == b"\x00\x01thello"
        buf[3] = ord("j")  # the body is the buffer itself, not a copy
        assert bytes(body) == b"\x00\x01tjello"
    run(main())


def test_keepalive_pings_when_idle_and_detects_silence():
    async def main():
        op = Opener(lambda: FakeBroker(answer_ping=False))
        c = client(op, keepalive=1)
        await c.connect()
        err = await asyncio.wait_for(c.wait_down(), 4)
        assert "link dead" in str(err)
        kinds = [f for f, b in op.brokers[0].packets()]
        assert 0xC0 in kinds  # PINGREQ sent while idle
    run(main())


def test_publish_while_down_raises_and_keeps_nothing():
    async def main():
        c = client(Opener())
        try:
            await c.publish("dt/thing-1/telemetry", b"x", qos=1)
        except MQTTError as e:
            assert "not connected" in str(e)
        else:
            raise AssertionError("publish while down did not raise")
        assert c.inflight == {}
    run(main())


def test_inflight_window_is_bounded():
    async def main():
        op = Opener(lambda: FakeBroker(ack_publish=False))
        c = client(op, max_inflight=3)
        await c.connect()
        for i in range(3):
            await c.publish("dt/thing-1/telemetry", b"x", qos=1)
        t = asyncio.create_task(c.publish("dt/thing-1/telemetry", b"fourth", qos=1))
        await asyncio.sleep(0.05)
        assert len(c.inflight) == 3 and len(op.brokers[0].publishes()) == 3
        op.brokers[0].feed(b"\x40\x02\x00\x01")
        pid = await asyncio.wait_for(t, 1)
        assert pid == 4 and len(c.inflight) == 3
        await c.disconnect()
    run(main())


class _SlowDrain(FakeBroker):
    """A broker whose socket takes its time to drain the first write (a full TCP buffer)."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()
        self.slow = False

    async def drain(self):
        if self.slow:
            self.slow = False
            await self.gate.wait()
        await super().drain()


def test_publish_waiting_for_the_lock_when_the_link_drops_raises_not_connected():
    # issue 13: "shadow: report failed: 'NoneType' object has no attribute 'write'" - a publish
    # queued behind another one's drain found the stream gone once it got the lock
    async def main():
        op = Opener(_SlowDrain)
        c = client(op)
        await c.connect()
        b = op.brokers[0]
        b.slow = True
        first = asyncio.create_task(c.publish("dt/thing-1/telemetry", b"1", qos=1))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.publish("$aws/things/thing-1/shadow/update", b"{}", qos=1))
        await asyncio.sleep(0.01)
        await c._down(OSError(104, "connection reset"))   # the link drops meanwhile
        b.gate.set()
        for t in (first, second):
            try:
                await t
            except MQTTError as e:
                assert "not connected" in str(e), e
            except OSError:
                pass  # the first one's own write failed with the link: an OSError is right
        assert c.inflight == {}
    run(main())


def test_the_broker_address_is_looked_up_once_per_attempt_and_reused_when_dns_fails():
    import socket
    from net import mqtt
    seen = []

    async def opener(host, port, ctx, name):
        seen.append(host)
        raise OSError(111, "refused")     # no broker needed: what matters is the address it got

    answers = [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 8883))], OSError(-3, "dns down")]
    lookups = []

    def lookup(host, port, *a):
        lookups.append(host)
        r = answers.pop(0)
        if isinstance(r, Exception):
            raise r
        return r
    saved = mqtt.getaddrinfo
    mqtt.getaddrinfo = lookup
    try:
        c = mqtt.MQTTClient("thing-1", "broker.example", 8883, opener=opener, timeout=1, resolve=True)

        async def main():
            for _ in range(2):
                try:
                    await c.connect()
                except OSError:
                    pass
        run(main())
    finally:
        mqtt.getaddrinfo = saved
    assert lookups == ["broker.example", "broker.example"]  # once per attempt
    assert seen == ["10.1.2.3", "10.1.2.3"]                 # the last good address when DNS failed
