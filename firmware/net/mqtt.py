# MQTT 3.1.1 client on asyncio streams (MicroPython's asyncio on the board, CPython's on the host).
# Mechanism only: it speaks the protocol and raises MQTTError/OSError. Reconnection, resubscription
# and retry policy live in net/connection.py; the packets themselves in net/mqtt_packets.py. QoS 0
# and 1; QoS1 publishes stay in `inflight` until their PUBACK and are re-sent with DUP after the
# next connect (same packet ids).
import asyncio
import socket

from compat import ticks_ms, ticks_diff
from net import mqtt_packets as P
from net.mqtt_packets import MQTTError, MAX_PAYLOAD  # noqa: F401  (the client's API)

getaddrinfo = socket.getaddrinfo  # tests replace it
# Incoming packets up to this size (PUBACKs, the shadow's accepted echoes of a report: 1.0-1.5 KB)
# are read into one buffer the client allocates once, at start-up: at 80 KB of heap a 1.2 KB
# buffer per packet was refused by the fragmented heap with 13 KB free (and the link dropped).
RX_BUF = 2048


async def _open(host, port, ssl_context, server_hostname):
    if ssl_context is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=server_hostname)


class MQTTClient:
    def __init__(self, client_id, server, port=8883, ssl_context=None, server_hostname=None,
                 keepalive=60, clean_session=True, will=None,
                 max_inflight=20, timeout=15, opener=None, resolve=None, rx_buf=RX_BUF):
        if not client_id or len(client_id) > 128:
            raise ValueError("mqtt client id: 1..128 characters, got %r" % (client_id,))
        if ssl_context is not None and not server_hostname:
            raise ValueError("mqtt: server_hostname is required with TLS (SNI and name check)")
        self.client_id = client_id
        self.server = server
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.will = will                  # (topic, payload, qos, retain) or None
        self.max_inflight = max_inflight
        self.timeout = timeout
        self._opener = opener or _open
        self._resolves = opener is None if resolve is None else resolve  # fake links take names
        self.on_message = None            # fn(topic: str, payload: bytes, retain: bool)
        self.on_puback = None             # fn(pid, token): token as given to publish()
        self._tokens = {}                 # pid -> token of an unacknowledged QoS1 publish
        self.inflight = {}                # pid -> PUBLISH packet (bytearray)
        self._order = []                  # inflight pids in send order (dicts are unordered on MicroPython)
        self.error = None                 # why the last connection ended
        self._pid = 0
        self._w = self._r = None
        self._tasks = []
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()   # replaced on every state change (acks, pings, down)
        self._waiting = {}                # pid -> SUBACK/UNSUBACK body
        self._tx = self._rx = 0
        self._up = False
        self._addr = None                 # the broker's address from the last good DNS lookup
        # see RX_BUF; a bytearray given is used as it is (allocated by the caller early, before
        # the heap fragments)
        self._rx_buf = bytearray(rx_buf) if type(rx_buf) is int and rx_buf else rx_buf or None
        # topic prefixes whose handlers take a large payload as mqtt_packets.Chunks (a stream for
        # json.load); other handlers get it joined in one buffer
        self.chunked = []

    @property
    def connected(self):
        return self._up

    # --- connection ------------------------------------------------------------------------
    def _resolve(self):
        """The broker's IPv4 address: looked up once per connection attempt, before the TLS
        handshake (a lookup blocks the loop on a board), and the last good one reused when the
        lookup fails (a DNS outage need not be a broker outage). TLS still checks the name."""
        try:
            a = getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)[0]
        except OSError:
            if self._addr is None:
                raise
            return self._addr
        if a[0] != socket.AF_INET:
            return self.server            # IPv6: left to the stream to connect by name
        sa = a[-1]
        self._addr = sa[0] if isinstance(sa, tuple) else "%d.%d.%d.%d" % tuple(sa[4:8])
        return self._addr

    async def connect(self):
        """Open the link, CONNECT, check CONNACK, then re-send unacknowledged QoS1 with DUP."""
        if self._up:
            raise MQTTError("mqtt: already connected")
        self.error = None
        self._r, self._w = await asyncio.wait_for(
            self._opener(self._resolve() if self._resolves else self.server, self.port, self.ssl_context, self.server_hostname), self.timeout)
        try:
            await self._send(P.connect(self.client_id, self.keepalive, self.clean_session, self.will))
            ptype, body = await asyncio.wait_for(self._read_packet(), self.timeout)
            if ptype != P.CONNACK or len(body) != 2:
                raise MQTTError("mqtt: expected CONNACK, got packet type 0x%02x" % ptype)
            if body[1]:
                raise MQTTError(P.CONNACK_REASONS.get(body[1], "the broker refused the connection: code %d" % body[1]), body[1])
        except BaseException:
            await self._close_stream()
            raise
        self._up = True
        self._rx = self._tx = ticks_ms()
        self._tasks = [asyncio.create_task(self._read_loop())]
        if self.keepalive:
            self._tasks.append(asyncio.create_task(self._keepalive_loop()))
        for pid in self.pending():
            pkt = self.inflight[pid]
            pkt[0] |= 0x08  # DUP: the broker may have seen it before the link went down
            await self._send(pkt)

    async def disconnect(self):
        """Polite close: DISCONNECT (the broker then discards the last will)."""
        if self._up:
            try:
                await self._send(P.DISCONNECT)
            except (OSError, MQTTError, asyncio.TimeoutError):
                pass
        await self._down(MQTTError("mqtt: disconnected by the client"))

    async def wait_down(self):
        """Wait until the link is down; returns the reason (an exception)."""
        while self._up:
            await self._changed.wait()
        return self.error

    async def _down(self, exc):
        if self._up or self._w is not None:
            self._up = False
            if self.error is None:
                self.error = exc
            me = asyncio.current_task()
            for t in self._tasks:
                if t is not me:
                    t.cancel()
            self._tasks = []
            await self._close_stream()
            self._notify()

    async def _close_stream(self):
        w, self._w, self._r = self._w, None, None
        if w is not None:
            try:
                w.close()
                await asyncio.wait_for(w.wait_closed(), 2)
            except Exception:
                pass

    def _notify(self):
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    # --- sending ---------------------------------------------------------------------------
    async def _send(self, pkt):
        if self._w is None:
            raise MQTTError("mqtt: not connected")
        try:
            async with self._lock:
                w = self._w  # again under the lock: the link may have dropped while we waited
                if w is None:
                    raise MQTTError("mqtt: not connected")
                w.write(pkt)
                await asyncio.wait_for(w.drain(), self.timeout)
        except (OSError, asyncio.TimeoutError) as e:
            await self._down(e)  # a failed write leaves the stream unusable
            raise
        self._tx = ticks_ms()

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self.inflight and self._pid not in self._waiting:
                return self._pid

    async def publish(self, topic, payload, qos=0, retain=False, token=None):
        """Send one message; returns its packet id for QoS1 (None for QoS0) once written.
        on_puback(pid, token) runs when the PUBACK arrives (possibly before this returns)."""
        if isinstance(payload, str):
            payload = payload.encode()
        # (buf, start, end): the payload is already in buf, with room for the header in front
        n = payload[2] - payload[1] if type(payload) is tuple else len(payload)
        if n > MAX_PAYLOAD:
            raise ValueError("mqtt publish to %s: payload of %d bytes exceeds the 128 KB limit" % (topic, n))
        if not topic or "+" in topic or "#" in topic:
            raise ValueError("mqtt publish: invalid topic %r" % (topic,))
        if qos not in (0, 1):
            raise ValueError("mqtt publish: qos must be 0 or 1")
        while qos and len(self.inflight) >= self.max_inflight:
            if not self._up:
                raise MQTTError("mqtt: not connected")
            await self._changed.wait()
        if not self._up:
            raise MQTTError("mqtt: not connected")
        pid = self._next_pid() if qos else None
        if type(payload) is tuple:
            pkt = P.publish_in(payload[0], payload[1], payload[2], topic, qos, retain, pid)
        else:
            pkt = P.publish(topic, payload, qos, retain, pid)
        if qos:
            self.inflight[pid] = pkt
            self._order.append(pid)
            self._tokens[pid] = token
        try:
            await self._send(pkt)
        except BaseException:
            # not (wholly) written: the caller still owns it; a half packet dies with the link
            if qos and self.inflight.pop(pid, None) is not None:  # (unless its PUBACK came first)
                self._tokens.pop(pid, None)
                self._order.remove(pid)
            raise
        return pid

    def pending(self):
        """Unacknowledged QoS1 packet ids, oldest first."""
        return list(self._order)

    async def subscribe(self, topic, qos=1):
        """Subscribe one filter; returns the granted QoS. A refusal (0x80) raises MQTTError."""
        pid = self._next_pid()
        codes = await self._request(pid, P.subscribe(pid, topic, qos))
        if not codes or codes[0] == 0x80:
            raise MQTTError("mqtt: the broker refused the subscription to %s (check the policy/ACL)" % topic, 0x80)
        return codes[0]

    async def _request(self, pid, pkt):
        self._waiting[pid] = None
        try:
            await self._send(pkt)
            async def wait():
                while self._waiting[pid] is None:
                    if not self._up:
                        raise MQTTError("mqtt: link lost while waiting for a reply")
                    await self._changed.wait()
            await asyncio.wait_for(wait(), self.timeout)
            return self._waiting[pid]
        finally:
            del self._waiting[pid]

    # --- receiving -------------------------------------------------------------------------
    async def _read_packet(self):
        ptype, body = await P.read(self._r, self._rx_buf)
        self._rx = ticks_ms()
        return ptype, body

    async def _read_loop(self):
        try:
            while True:
                ptype, body = await self._read_packet()
                await self._dispatch(ptype, body)
        except asyncio.CancelledError:
            raise
        except EOFError:
            await self._down(MQTTError("mqtt: the broker closed the connection"))
        except Exception as e:
            await self._down(e)

    async def _dispatch(self, ptype, body):
        try:
            await self._dispatch_packet(ptype, body)
        except P.MALFORMED as e:  # too short, bad UTF-8 topic...: the broker is broken or hostile
            raise MQTTError("mqtt: malformed packet (type 0x%02x, %d bytes) from the broker: %s"
                            % (ptype, len(body), e))

    async def _dispatch_packet(self, ptype, body):
        kind = ptype & 0xF0
        if kind == P.PUBLISH:
            topic, pid, off = P.split_publish(ptype, body)
            # a handler that takes a large payload as a stream (and hears of one skipped)
            streams = any(topic.startswith(c) for c in self.chunked)
            if isinstance(body, P.Skipped):
                if self.on_message is not None and streams:
                    try:  # its handler says so and answers it (a delta's version refused)
                        self.on_message(topic, body, bool(ptype & 1))
                    except Exception as e:
                        print("mqtt: on_message failed for %s: %r" % (topic, e))
                else:
                    print("mqtt: a %d-byte message on %s is more than the heap can take: skipped"
                          % (len(body), topic))
            elif self.on_message is not None:
                # the payload without a copy: a memoryview of the receive buffer (valid until the
                # next read: handlers parse it at once), or the body itself, cut in place
                if isinstance(body, P.Chunks):
                    body.seek(off)
                    if not streams:
                        body = body.join()
                elif isinstance(body, memoryview):
                    body = body[off:]
                else:
                    body[0:off] = b""
                try:
                    self.on_message(topic, body, bool(ptype & 1))
                except Exception as e:  # a handler bug must not take the link down
                    print("mqtt: on_message failed for %s: %r" % (topic, e))
            if pid is not None:
                await self._send(P.puback(pid))
        elif kind == P.PUBACK:
            if len(body) != 2:
                raise ValueError("PUBACK of %d bytes" % len(body))
            pid = body[0] << 8 | body[1]
            if self.inflight.pop(pid, None) is not None:
                self._order.remove(pid)
                token = self._tokens.pop(pid)
                if self.on_puback is not None:
                    self.on_puback(pid, token)
            self._notify()
        elif kind == P.SUBACK:
            pid = body[0] << 8 | body[1]
            if pid in self._waiting:
                self._waiting[pid] = bytes(body[2:]) or b"\x00"
                self._notify()
        elif kind == P.PINGRESP:
            pass  # what it proves (the broker is there) is in _rx: _read_packet set it
        else:
            raise MQTTError("mqtt: unexpected packet type 0x%02x" % ptype)

    async def _keepalive_loop(self):
        # Ping when we have been quiet for half the keep-alive; the link is dead when nothing has
        # arrived for 1.5 keep-alives (a PINGRESP would have).
        ka = self.keepalive * 1000
        try:
            while self._up:
                await asyncio.sleep(ka / 4000)
                now = ticks_ms()
                if ticks_diff(now, self._rx) > ka * 3 // 2:
                    await self._down(MQTTError("mqtt: nothing from the broker for %d s: link dead" % (ka * 3 // 2000)))
                    return
                if ticks_diff(now, self._tx) >= ka // 2:
                    await self._send(P.PINGREQ)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._down(e)
