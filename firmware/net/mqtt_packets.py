# MQTT 3.1.1 packets: what net/mqtt.py's client writes (CONNECT, PUBLISH, SUBSCRIBE, PUBACK) and
# how it reads one packet off a stream. No state and no policy; malformed input raises MQTTError.
import struct

from compat import const

MAX_PAYLOAD = const(131072)        # AWS IoT: 128 KB per message
# The largest packet the board takes in: a shadow document at AWS's 8 KB of state with its
# metadata, and room to spare. Read into one buffer of its exact size (no growing bytes object).
_MAX_PACKET = const(24576)
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


def subscribe(pid, topic, qos):
    return _packet(0x82, struct.pack("!H", pid) + _str(topic) + bytes([qos]))


def puback(pid):
    return _packet(PUBACK, struct.pack("!H", pid))


def split_publish(ptype, body):
    """(topic, pid or None, payload offset) of an incoming PUBLISH."""
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
    return ptype, (await _read_body(r, n, buf) if n else b"")


async def _read_body(r, n, buf):
    if not hasattr(r, "readinto"):  # CPython's StreamReader
        return bytearray(await r.readexactly(n))
    if buf is not None and n <= len(buf):
        mv = memoryview(buf)[:n]
    else:
        mv = memoryview(bytearray(n))
    got = 0
    while got < n:
        k = await r.readinto(mv[got:])
        if k is None:  # TLS: a record not complete yet
            continue
        if not k:
            raise EOFError
        got += k
    return mv
