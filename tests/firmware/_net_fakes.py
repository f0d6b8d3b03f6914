# A fake MQTT broker on an in-memory stream (bytearray in, io.BytesIO out) for protocol-level tests
# of net.mqtt on both runtimes. It parses what the client writes and answers like a broker would.
import asyncio
import io
import struct


def parse_packets(data):
    """[(first byte, body bytes)] of a byte string of MQTT packets."""
    out = []
    i = 0
    while i < len(data):
        first = data[i]
        i += 1
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((first, bytes(data[i:i + n])))
        i += n
    return out


def packet(first, body):
    n = len(body)
    rl = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        rl.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes([first]) + bytes(rl) + body


def publish_packet(topic, payload, qos=0, pid=1):
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(0x30 | (qos << 1), body)


def publish_fields(first, body):
    """(topic, pid or None, payload, dup) of a PUBLISH packet."""
    tl = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tl].decode()
    off = 2 + tl
    pid = None
    if (first >> 1) & 3:
        pid = struct.unpack("!H", body[off:off + 2])[0]
        off += 2
    return topic, pid, body[off:], bool(first & 0x08)


class FakeBroker:
    """Reader and writer of one connection. Options say how it answers."""

    def __init__(self, connack=0, suback=1, ack_publish=True, answer_ping=True, on_publish=None):
        self.connack = connack
        self.suback = suback
        self.ack_publish = ack_publish
        self.answer_ping = answer_ping
        self.on_publish = on_publish      # fn(broker, topic, payload) for scripted replies
        self.inbox = bytearray()
        self.out = io.BytesIO()
        self.closed = False
        self._ev = asyncio.Event()

    # what the client sent
    def packets(self):
        return parse_packets(self.out.getvalue())

    def publishes(self):
        return [publish_fields(f, b) for f, b in self.packets() if f & 0xF0 == 0x30]

    def feed(self, data):
        self.inbox += data
        self._ev.set()

    def hang_up(self):
        self.closed = True
        self._ev.set()

    # StreamReader / StreamWriter subset used by net.mqtt
    async def readexactly(self, n):
        while len(self.inbox) < n:
            if self.closed:
                raise EOFError("closed")
            self._ev = asyncio.Event()
            await self._ev.wait()
        b = bytes(self.inbox[:n])
        self.inbox[0:n] = b""  # in place: no copy of the rest per byte read
        return b

    def write(self, data):
        if self.closed:
            raise OSError(32, "broken pipe")
        self.out.write(bytes(data))
        for first, body in parse_packets(bytes(data)):
            self._answer(first, body)

    async def drain(self):
        if self.closed:
            raise OSError(32, "broken pipe")

    def close(self):
        self.closed = True
        self._ev.set()

    async def wait_closed(self):
        pass

    def _answer(self, first, body):
        kind = first & 0xF0
        if kind == 0x10:
            self.feed(packet(0x20, bytes([0, self.connack])))
        elif kind == 0x30:
            topic, pid, payload, dup = publish_fields(first, body)
            if pid is not None and self.ack_publish:
                self.feed(packet(0x40, struct.pack("!H", pid)))
            if self.on_publish is not None:
                self.on_publish(self, topic, payload)
        elif kind == 0x80:
            self.feed(packet(0x90, body[:2] + bytes([self.suback])))
        elif kind == 0xA0:
            self.feed(packet(0xB0, body[:2]))
        elif kind == 0xC0 and self.answer_ping:
            self.feed(b"\xd0\x00")


class IntoBroker(FakeBroker):
    """A FakeBroker whose reader also has readinto, as MicroPython's streams (TLS included) do:
    net.mqtt then reads packet bodies into its own receive buffer. Like a TLS stream, it hands
    over at most `chunk` bytes per call."""
    chunk = 100

    async def readinto(self, buf):
        while not self.inbox:
            if self.closed:
                return 0
            self._ev = asyncio.Event()
            await self._ev.wait()
        n = min(len(buf), len(self.inbox), self.chunk)
        buf[:n] = memoryview(self.inbox)[:n]
        self.inbox[0:n] = b""  # in place: a test's heap is an ESP32's too
        return n


class Opener:
    """opener= for MQTTClient: each connect gets a new FakeBroker made by `factory`."""

    def __init__(self, factory=FakeBroker):
        self.factory = factory
        self.brokers = []
        self.fail = 0                     # refuse this many connects with OSError first

    async def __call__(self, host, port, ssl_context, server_hostname):
        if self.fail:
            self.fail -= 1
            raise OSError(111, "connection refused")
        b = self.factory()
        self.brokers.append(b)
        return b, b


def run(coro):
    return asyncio.run(coro)


async def until(cond, timeout=3):
    """Wait until cond() holds (checked every 10 ms), failing after `timeout` seconds."""
    for _ in range(int(timeout * 100)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within %s s" % timeout)


async def shut(conn, *tasks):
    """End a test's link: its tasks cancelled, then a polite DISCONNECT (the board never stops
    its link, so net.connection has no stop of its own)."""
    for t in tasks:
        t.cancel()
    await conn.client.disconnect()
