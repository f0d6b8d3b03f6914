# The AWS IoT Device Shadow protocol (classic shadow) over net.connection: GET on every (re)connect,
# deltas to a callback (stale versions ignored), reports with clientToken tracking, 409 -> re-GET
# and retry with the new version, 429 -> back off and retry; few requests in flight (AWS: 10 max).
import asyncio
import json

from net.backoff import Backoff

_TOPICS = ("update/delta", "update/accepted", "update/rejected", "get/accepted", "get/rejected")


class ShadowError(Exception):
    def __init__(self, code, message):
        super().__init__("shadow request rejected: %s %s" % (code, message))
        self.code = code


class ShadowClient:
    def __init__(self, conn, thing, on_delta, max_inflight=4, timeout=10,
                 retries=5, log=print, backoff=None):
        self.conn = conn
        self.thing = thing
        self.base = "$aws/things/%s/shadow/" % thing
        self.on_delta = on_delta          # fn(state: dict, version) -> dict to report, or None
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
            await self.conn.client.publish(self.base + op, json.dumps(doc), qos=1)
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

    async def get(self):
        """GET the shadow; the document (and its delta) is handled as it arrives."""
        try:
            return await self._request("get", {})
        except ShadowError as e:
            if e.code == 404:  # no shadow yet: nothing desired
                return None
            raise

    async def report(self, reported, version=None):
        """Report state; returns the accepted document. 409 re-GETs and retries, 429 backs off."""
        for attempt in range(self.retries):
            doc = {"state": {"reported": reported}}
            if version is not None:
                doc["version"] = version
            try:
                return await self._request("update", doc)
            except ShadowError as e:
                if e.code == 409 and version is not None:
                    await self.get()
                    version = self.version
                elif e.code == 429 or e.code in (500, 503):
                    await asyncio.sleep(self.backoff.delay())
                else:
                    raise
        raise ShadowError(429, "gave up after %d attempts" % self.retries)

    def _on_message(self, topic, payload, retain):
        try:
            doc = json.loads(payload)
        except ValueError:
            self.log("shadow: %s: not JSON, ignored" % topic)
            return
        op = topic[len(self.base):]
        v = doc.get("version")
        if isinstance(v, int) and v > self.version:
            self.version = v
        tok = doc.get("clientToken")
        if op.endswith("accepted") or op.endswith("rejected"):
            p = self._pending.get(tok)
            if p is not None:
                p[1] = (op.endswith("accepted"), doc)
                p[0].set()
            if op == "get/accepted":
                delta = doc.get("state", {}).get("delta")
                if delta and isinstance(v, int) and v > self.applied:
                    self._deliver(delta, v)
        elif op == "update/delta":
            if not isinstance(v, int) or v <= self.applied:
                return  # stale or repeated: a newer state was already applied
            self._deliver(doc.get("state", {}), v)

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

    async def _report_quietly(self, reported):
        try:
            await self.report(reported)
        except Exception as e:
            self.log("shadow: report failed: %s" % e)
