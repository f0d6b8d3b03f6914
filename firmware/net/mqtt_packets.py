# MQTT 3.1.1 packets: what net/mqtt.py's client writes (CONNECT, PUBLISH, SUBSCRIBE, PUBACK) and
# how it reads one packet off a stream. No state and no policy; malformed input raises MQTTError.
import io
import struct

from compat import const

MAX_PAYLOAD = const(131072)        # AWS IoT: 128 KB per message
# The largest packet the board takes in: a shadow document at AWS's 8 KB of state with its
# metadata, and room to spare. Read into one buffer of its exact size (no growing bytes object).
_MAX_PACKET = const(24576)
_CHUNK = const(1024)               # a larger body than the receive buffer is read in pieces this size
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBACK = const(0x90)
PINGRESP = const(0xD0)
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"

CONNACK_REASONS = {
    1: "the broker refused the connection: unacceptable protocol version (needs MQTT 3.1.1)",
    2: "the broker refused the connection: client id rejected (use the thing name, 1..128 chars)",
    3: "the broker refused the connection: server unavailable",
    4: "the broker refused the connection: bad user name or password",
    5: "the broker refused the connection: not authorised (check the device certificate and policy)",
}

MALFORMED = (ValueError, IndexError, getattr(struct, "error", ValueError))


class MQTTError(Exception):
    """A protocol-level failure; `code` is the CONNACK/SUBACK code when there is one."""

    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.code = code


class Chunks(io.IOBase):
    """A body larger than the client's receive buffer, in 1 KB pieces: no large contiguous block
    for a fragmented heap to refuse (a 16 KB shadow document was, at 112 KB of heap). Read as a
    stream from the position `seek` set: json.load parses it without joining it."""

    def __init__(self, n):
        self.parts = [bytearray(min(_CHUNK, n - i)) for i in range(0, n, _CHUNK)]
        self.n = n
        self.seek(0)

    def __len__(self):
        return self.n

    def seek(self, pos):
        self._i, self._off = divmod(pos, _CHUNK)

    def readinto(self, buf):
        parts = self.parts
        while self._i < len(parts) and self._off >= len(parts[self._i]):
            self._i += 1
            self._off = 0
        if self._i >= len(parts):
            return 0
        p = parts[self._i]
        k = min(len(buf), len(p) - self._off)
        buf[:k] = memoryview(p)[self._off:self._off + k]
        self._off += k
        return k

    def join(self):
        """The rest of the body in one buffer of its size (for handlers that parse bytes)."""
        out = bytearray(self.n - self._i * _CHUNK - self._off)
        mv = memoryview(out)
        i = 0
        while i < len(out):
            i += self.readinto(mv[i:])
        return out

    def read(self, n=-1):  # CPython's json.load reads it whole
        return bytes(self.join())


def _varlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def _packet(first, body):
    return bytes([first]) + _varlen(len(body)) + body


def connect(client_id, keepalive, clean_session, will):
    """CONNECT; will: (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean_session else 0
    payload = _str(client_id)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(msg)
    return _packet(0x10, b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack("!H", keepalive) + payload)


def publish(topic, payload, qos, retain, pid):
    """The PUBLISH packet in one buffer of its exact size: a 5 KB batch costs 5 KB, not four
    copies of it (concatenating header, topic and payload would)."""
    t = topic.encode()
    rem = 2 + len(t) + (2 if qos else 0) + len(payload)
    vl = _varlen(rem)
    i = 1 + len(vl)
    pkt = bytearray(i + rem)
    pkt[0] = PUBLISH | (qos << 1) | (1 if retain else 0)
    pkt[1:i] = vl
    struct.pack_into("!H", pkt, i, len(t))
    i += 2
    pkt[i:i + len(t)] = t
    i += len(t)
    if qos:
        struct.pack_into("!H", pkt, i, pid)
        i += 2
    pkt[i:] = payload
    return pkt


def publish_in(buf, start, end, topic, qos, retain, pid):
    """A PUBLISH whose payload is already in buf[start:end]: the header is written just in front
    of it (start leaves 9 bytes + the topic for it), the packet is a view of buf: no copy."""
    t = topic.encode()
    rem = 2 + len(t) + (2 if qos else 0) + end - start
    vl = _varlen(rem)
    i = start - rem + (end - start) - 1 - len(vl)
    if i < 0:
        raise ValueError("mqtt publish: no room for the header in front of the payload")
    buf[i] = PUBLISH | (qos << 1) | (1 if retain else 0)
    j = i + 1 + len(vl)
    buf[i + 1:j] = vl
    struct.pack_into("!H", buf, j, len(t))
    buf[j + 2:j + 2 + len(t)] = t
    if qos:
        struct.pack_into("!H", buf, j + 2 + len(t), pid)
    return memoryview(buf)[i:end]


def subscribe(pid, topic, qos):
    return _packet(0x82, struct.pack("!H", pid) + _str(topic) + bytes([qos]))


def puback(pid):
    return _packet(PUBACK, struct.pack("!H", pid))


class Skipped:
    """A body the heap could not take (MemoryError allocating its pieces): its head (topic and
    packet id) kept in the receive buffer, the rest read and thrown away. The link stays up and the
    packet is still acknowledged; a shadow document too large for the board costs a log line, not a
    reconnect (which would bring the same document again)."""

    def __init__(self, head, n, version=None):
        self.head = head
        self.n = n
        self.version = version  # the payload's top-level "version", when found

    def __len__(self):
        return self.n


def split_publish(ptype, body):
    """(topic, pid or None, payload offset) of an incoming PUBLISH."""
    if isinstance(body, Chunks):
        body = body.parts[0]  # the topic (AWS: 256 bytes at most) is in the first piece
    elif isinstance(body, Skipped):
        body = body.head
    tlen = struct.unpack_from("!H", body, 0)[0]
    topic = str(body[2:2 + tlen], "utf-8")
    off = 2 + tlen
    pid = None
    if (ptype >> 1) & 3:
        pid = struct.unpack_from("!H", body, off)[0]
        off += 2
    return topic, pid, off


async def read(r, buf=None):
    """(packet type byte, body) of the next packet on stream r. A body that fits `buf` (a bytearray
    the client keeps for good) is read into it and returned as a memoryview of it, valid until the
    next read: no allocation per packet, so a fragmented heap cannot refuse one. A larger body (at
    most _MAX_PACKET) is read into a new buffer of its exact size."""
    ptype = (await r.readexactly(1))[0]
    n = shift = 0
    while True:
        b = (await r.readexactly(1))[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 21:
            raise MQTTError("mqtt: malformed remaining length")
    if n > _MAX_PACKET:
        raise MQTTError("mqtt: incoming packet of %d bytes exceeds the buffer limit" % n)
    return ptype, (await _read_body(r, n, buf, ptype) if n else b"")


async def _read_body(r, n, buf, ptype):
    if not hasattr(r, "readinto"):  # CPython's StreamReader
        return bytearray(await r.readexactly(n))
    if buf is not None and n <= len(buf):
        mv = memoryview(buf)[:n]
    elif buf is not None and n > _CHUNK:
        try:
            body = Chunks(n)
        except MemoryError:
            body = None   # (the pieces allocated so far are garbage now)
        if body is None:
            return await _skip(r, n, buf, ptype)
        for p in body.parts:
            await _read_into(r, memoryview(p))
        return body
    else:
        mv = memoryview(bytearray(n))
    await _read_into(r, mv)
    return mv


async def _skip(r, n, buf, ptype):
    """Skipped: the body's first bytes (a topic is 2 + 256 bytes at most, then the packet id) in
    buf, the rest read through the buffer after them and dropped; on the way, the top-level
    "version" of a JSON payload (net.doc_version) when there is room for the scan."""
    mv = memoryview(buf)
    head = min(n, 260, len(buf) - 16)
    await _read_into(r, mv[:head])
    try:
        off = split_publish(ptype, mv[:head])[2]
        if off > head:
            raise ValueError
        from net.doc_version import TopVersion
        scan = TopVersion()
        scan.feed(mv[off:head])
    except MALFORMED + (MemoryError,):  # (a topic longer than the head: no scan)
        scan = None
    left = n - head
    while left:
        k = min(left, len(buf) - head)
        await _read_into(r, mv[head:head + k])
        left -= k
        if scan is not None:
            scan.feed(mv[head:head + k])
    return Skipped(mv[:head], n, scan.version if scan is not None else None)


async def _read_into(r, mv):
    got = 0
    while got < len(mv):
        k = await r.readinto(mv[got:])
        if k is None:  # TLS: a record not complete yet
            continue
        if not k:
            raise EOFError
        got += k
