# The AWS IoT Jobs MQTT API on the device: notify-next, $next/get, <jobId>/update, plus the
# MQTT-based file delivery responses routed to a running download. Loaded with the network and
# kept small: the job runner (ota/agent.py) is imported only while a job runs, then dropped.
import json
import sys

import asyncio

TRIAL_S = 300  # as otaboot.TRIAL_S


def _ob(call, *args):
    """otaboot.<call>(*args): the slot pointer module is in RAM only while it is used."""
    import otaboot
    try:
        return getattr(otaboot, call)(*args)
    finally:
        sys.modules.pop("otaboot", None)

_TOPICS = (("jobs/notify-next", 1), ("jobs/+/get/+", 1), ("jobs/+/update/+", 1),
           ("streams/+/data/json", 0), ("streams/+/rejected/json", 0), ("streams/+/description/json", 0))


def _state():
    """/update/state.json (otaboot's slot pointer), read without importing otaboot: {} if none."""
    try:
        with open("/update/state.json") as f:
            st = json.load(f)
        return st if isinstance(st, dict) else {}
    except (OSError, ValueError):
        return {}


class Jobs:
    def __init__(self, conn, thing, log=print):
        self.conn = conn
        self.thing = thing
        self.base = "$aws/things/%s/" % thing
        self.log = log
        self.next = None          # the execution the service last named as next
        self.sink = None          # fn(topic, doc) of a running download
        self._n = 0
        self._waiting = {}        # clientToken -> [Event, doc]
        self._kick = asyncio.Event()
        self.confirmed = False
        for t, q in _TOPICS:
            conn.subscribe(self.base + t, self._on_message, qos=q)
        conn.on_connect(self._on_connect)

    async def _on_connect(self):
        asyncio.create_task(self._publish("jobs/$next/get", {}))

    def token(self):
        self._n += 1
        return "%s-j%d" % (self.thing[:48], self._n)

    async def _publish(self, topic, doc, qos=1):
        try:
            await self.conn.client.publish(self.base + topic, json.dumps(doc), qos=qos)
        except Exception as e:
            self.log("ota: publish %s failed: %s" % (topic, e))

    async def request(self, topic, doc, timeout=10):
        """Publish a request and wait for its accepted/rejected answer: (accepted, doc)."""
        tok = doc["clientToken"] = self.token()
        w = self._waiting[tok] = [asyncio.Event(), None]
        try:
            await self._publish(topic, doc)
            await asyncio.wait_for(w[0].wait(), timeout)
        finally:
            del self._waiting[tok]
        return w[1]

    async def update(self, job, status, details=None):
        doc = {"status": status}
        if details:
            doc["statusDetails"] = details
        return await self.request("jobs/%s/update" % job, doc)

    def _on_message(self, topic, payload, retain):
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        sub = topic[len(self.base):]
        if sub.startswith("streams/"):
            if self.sink is not None:
                self.sink(sub, doc)
            return
        w = self._waiting.get(doc.get("clientToken")) if isinstance(doc, dict) else None
        if w is not None:
            w[1] = (sub.endswith("/accepted"), doc)
            w[0].set()
        if sub == "jobs/notify-next" or sub == "jobs/$next/get/accepted":
            self.next = doc.get("execution")
            self._kick.set()

    def reported(self):
        """The app reported its state: a slot on trial is confirmed (once per boot)."""
        if self.confirmed:
            return
        self.confirmed = True
        job = _ob("confirm")
        if job:
            self.log("ota: update for job %s confirmed" % job)
            self._kick.set()

    async def run(self):
        st = _state()
        if st.get("pending"):  # not connected and reported by then: rolled back
            asyncio.create_task(self._deadline(st["pending"].get("trial_s", TRIAL_S)))
        while True:
            await self._kick.wait()
            self._kick = asyncio.Event()
            if not self.conn.up:
                continue
            st = _state()
            try:
                r = st.get("result")
                if r:
                    await self._report(r)
                elif self.next and not st.get("pending"):
                    await self._run_job(self.next, st)
            except Exception as e:  # e.g. no answer: try again a little later
                self.log("ota: %r" % e)
                asyncio.create_task(self._again(5))

    async def _again(self, s):
        await asyncio.sleep(s)
        self._kick.set()

    async def _report(self, r):
        details = {"version": str(r.get("version"))}
        if r.get("reason"):
            details["reason"] = r["reason"]
        res = await self.update(r["job"], r["status"], details)
        if res is not None:  # accepted, or rejected because the job is over: either way done
            _ob("clear_result", r["job"])
            self.log("ota: job %s reported %s" % (r["job"], r["status"]))
            await self._publish("jobs/$next/get", {})

    async def _run_job(self, ex, st):
        job = ex.get("jobId")
        try:
            from ota import agent
            await agent.run(self, ex, st)
            self.next = None
        except asyncio.TimeoutError:
            raise  # no answer from the service: the run loop tries again
        except Exception as e:  # a bug, not a transient: end the job instead of retrying forever
            self.log("ota: job %s: agent error %r" % (job, e))
            self.next = None
            await self.update(job, "FAILED", {"reason": ("agent error: %r" % (e,))[:200]})
        finally:
            self.sink = None
            # the package keeps its submodules as attributes: compat.unload drops those too
            from compat import unload
            unload("ota.agent", "ota.stream", "ota.manifest", "ota.ecdsa", "ota.image", "otaboot")
            import gc
            gc.collect()
        self.log("ota: job %s handled" % job)

    async def _deadline(self, s):
        await asyncio.sleep(s)
        if _ob("fail", "not confirmed within %d s (no connection or no shadow report)" % s):
            import machine
            machine.reset()
