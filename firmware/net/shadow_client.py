# The AWS IoT Device Shadow protocol (classic shadow) over net.connection: GET on every (re)connect,
# deltas to a callback (stale versions ignored), reports with clientToken tracking, 429 -> back off
# and retry; few requests in flight (AWS: 10 max).
# Versions as AWS keeps them: a shadow's version only grows, except that a shadow deleted for more
# than 48 h starts again from 0. So the GET's version is the truth: a delta older than the last one
# applied makes us GET, and a GET below it (a new shadow, or a bogus version seen before) resets it.
import asyncio
import io
import json

from net.backoff import Backoff
from net.mqtt_packets import Skipped

_TOPICS = ("update/delta", "update/accepted", "update/rejected", "get/accepted", "get/rejected")


# Requests up to this size (a report is about 1 KB) are written as JSON into one buffer kept for
# good, and sent as a packet from it: json.dumps grows its string by reallocation, and at 80 KB of
# heap one of those steps (636 B), or the packet's own buffer (513-796 B), was refused by the
# fragmented heap (measured). Larger ones get a buffer of their own.
TX_BUF = 1536


class _Out(io.IOBase):
    """A stream that writes into its buffer (and only counts what does not fit)."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.n = 0

    def write(self, s):
        k = len(s)  # CPython writes ASCII str (ensure_ascii), MicroPython UTF-8 bytes
        if self.n + k <= len(self.buf):
            self.buf[self.n:self.n + k] = s.encode() if isinstance(s, str) else s
        self.n += k
        return k


class ShadowError(Exception):
    def __init__(self, code, message):
        super().__init__("shadow request rejected: %s %s" % (code, message))
        self.code = code


class ShadowClient:
    def __init__(self, conn, thing, on_delta, max_inflight=4, timeout=10,
                 retries=5, log=print, backoff=None, on_rejected=None, on_too_large=None):
        self.conn = conn
        self.thing = thing
        self.base = "$aws/things/%s/shadow/" % thing
        self.on_delta = on_delta          # fn(state: dict, version) -> dict to report, or None
        # fn(reported, ShadowError) -> dict to report instead, when the service refused what
        # on_delta returned (400, 413, 415): an error is reported, the delta is not tried again
        self.on_rejected = on_rejected
        # fn(version, bytes) -> dict to report, for a delta the heap could not take in (read and
        # dropped by the MQTT client: mqtt_packets.Skipped): refused for that version, not retried
        self.on_too_large = on_too_large
        self._rechecking = False
        self.max_inflight = max_inflight
        self.timeout = timeout
        self.retries = retries
        self.log = log
        self.backoff = backoff or Backoff(base=1, cap=30, floor=0.5)
        self.version = 0                  # highest shadow version seen
        self.applied = -1                 # version of the last delta handed to on_delta
        self._n = 0
        self._pending = {}                # clientToken -> [event, (ok, doc)]
        self._slots = asyncio.Event()
        self._out = _Out(TX_BUF)
        self._tx = asyncio.Lock()         # one request at a time in the buffer until it is sent
        self._pid = None                  # the packet id of the last request sent from it
        # documents over the client's receive buffer come as a stream of 1 KB pieces (json.load)
        getattr(getattr(conn, "client", None), "chunked", []).append(self.base)
        for t in _TOPICS:
            conn.subscribe(self.base + t, self._on_message, qos=1)
        conn.on_connect(self._on_connect)

    async def _on_connect(self):
        self.applied = -1  # a delta we applied may not have been reported: take the GET's again
        for tok, p in list(self._pending.items()):
            p[1] = (False, {"code": 0, "message": "connection lost"})
            p[0].set()
        asyncio.create_task(self._get_quietly())

    async def _get_quietly(self):
        try:
            await self.get()
        except Exception as e:
            self.log("shadow: GET failed: %s" % e)

    def _token(self):
        self._n += 1
        return "%s-%d" % (self.thing[:48], self._n)  # clientToken: at most 64 bytes

    async def _request(self, op, doc):
        while len(self._pending) >= self.max_inflight:
            ev = self._slots
            await ev.wait()
        tok = self._token()
        doc["clientToken"] = tok
        p = [asyncio.Event(), None]
        self._pending[tok] = p
        try:
            async with self._tx:
                topic = self.base + op
                self._pid = await self.conn.client.publish(topic, self._encode(doc, topic), qos=1)
            await asyncio.wait_for(p[0].wait(), self.timeout)
        except asyncio.TimeoutError:
            raise ShadowError(0, "no answer to %s within %s s" % (op, self.timeout))
        finally:
            del self._pending[tok]
            ev, self._slots = self._slots, asyncio.Event()
            ev.set()
        ok, body = p[1]
        if not ok:
            raise ShadowError(body.get("code"), body.get("message", ""))
        return body

    def _encode(self, doc, topic):
        """doc as the payload of a publish to topic: written into the kept buffer after room for
        the packet's header, as (buffer, start, end) (the client writes the header in front, the
        packet in flight is a view of the buffer: no copy); while the packet before is still in
        flight from it, or when it does not fit, in a buffer of its own of the exact size."""
        out = self._out
        out.n = start = 9 + len(topic.encode())
        if self._pid is None or self._pid not in self.conn.client.inflight:
            json.dump(doc, out)
            if out.n <= len(out.buf):
                return out.buf, start, out.n
        count = _Out(0)  # (json.dumps would grow a string by reallocation)
        json.dump(doc, count)
        big = _Out(count.n)
        json.dump(doc, big)
        return big.buf

    async def get(self):
        """GET the shadow; the document (and its delta) is handled as it arrives."""
        try:
            return await self._request("get", {})
        except ShadowError as e:
            if e.code == 404:  # no shadow yet: nothing desired
                return None
            raise

    async def report(self, reported):
        """Report state; returns the accepted document. 429 (and 500, 503) back off and retry.
        Reports carry no version, so the service never answers them 409 (version conflict)."""
        for attempt in range(self.retries):
            try:
                return await self._request("update", {"state": {"reported": reported}})
            except ShadowError as e:
                if e.code == 429 or e.code in (500, 503):
                    await asyncio.sleep(self.backoff.delay())
                else:
                    raise
        raise ShadowError(429, "gave up after %d attempts" % self.retries)

    def _on_message(self, topic, payload, retain):
        if isinstance(payload, Skipped):
            self._skipped(topic[len(self.base):], payload)
            return
        try:
            doc = json.load(payload) if hasattr(payload, "readinto") else json.loads(payload)
        except (ValueError, RuntimeError, MemoryError):  # (RuntimeError: nested too deep)
            self.log("shadow: %s: not JSON (or too deep or large to parse), ignored" % topic)
            return
        if type(doc) is not dict:
            self.log("shadow: %s: not a JSON object, ignored" % topic)
            return
        op = topic[len(self.base):]
        v = doc.get("version")
        if type(v) is not int or not 0 <= v < 1 << 63:  # AWS: a 64-bit count; bool is no version
            v = None
        if v is not None and (v > self.version or op == "get/accepted"):
            self.version = v
        tok = doc.get("clientToken")
        if op.endswith("accepted") or op.endswith("rejected"):
            p = self._pending.get(tok)
            if p is not None:
                p[1] = (op.endswith("accepted"), doc)
                p[0].set()
            if op == "get/accepted":
                if v is not None and v < self.applied:
                    self.applied = -1  # the service's own version is below what we applied
                st = doc.get("state")
                delta = st.get("delta") if type(st) is dict else None
                if delta and type(delta) is dict and v is not None and v > self.applied:
                    self._deliver(delta, v)
        elif op == "update/delta":
            if v is None or type(doc.get("state")) is not dict:
                self.log("shadow: delta without a valid version or state, ignored")
                return
            if v < self.applied and not self._rechecking:
                asyncio.create_task(self._recheck())
            if v <= self.applied:
                return  # stale or repeated: a newer state was already applied
            self._deliver(doc["state"], v)

    def _skipped(self, op, body):
        self.log("shadow: %s of %d bytes is more than the heap can take: not read" % (op, len(body)))
        v = body.version
        if op != "update/delta" or v is None or v <= self.applied or self.on_too_large is None:
            return  # (a GET's answer: the same desired comes as a delta, or was refused as one)
        self.applied = v
        out = self.on_too_large(v, len(body))
        if out:
            asyncio.create_task(self._report_quietly(out))

    def _deliver(self, state, version):
        # applied in a task of its own: the MQTT read loop goes on reading (PUBACKs, pings)
        # while the config is checked, saved and the pipeline rebuilt
        self.applied = version
        asyncio.create_task(self._apply(state, version))

    async def _apply(self, state, version):
        try:
            out = self.on_delta(state, version)
        except Exception as e:
            self.log("shadow: delta handler failed: %r" % e)
            return
        if out:
            await self._report_quietly(out)

    async def _recheck(self):
        # a delta older than the last applied: the shadow was made anew, or that version was bogus
        self._rechecking = True
        try:
            await self.get()
        except Exception as e:
            self.log("shadow: GET failed: %s" % e)
        self._rechecking = False

    async def _report_quietly(self, reported):
        try:
            await self.report(reported)
        except ShadowError as e:
            self.log("shadow: report failed: %s" % e)
            if e.code in (400, 413, 415, 422) and self.on_rejected is not None:
                out = self.on_rejected(reported, e)
                if out:
                    try:
                        await self.report(out)
                    except Exception as e2:
                        self.log("shadow: error report failed: %s" % e2)
        except Exception as e:
            self.log("shadow: report failed: %s" % e)
