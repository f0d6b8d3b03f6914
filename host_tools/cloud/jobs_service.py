"""The local AWS IoT Jobs and MQTT-based file delivery service: the MQTT front end of
host_tools.cloud.jobs_store, beside the shadow service in `edgeshadow broker`.

`JobsService` connects with its own certificate (CN edgeshadow-jobs-service) and answers, for
every thing, on AWS's reserved topics:
  $aws/things/T/jobs/$next/get | start-next | get | <jobId>/get | <jobId>/update  -> .../accepted|rejected
  $aws/things/T/jobs/notify-next          (published when a thing's next execution changes)
  $aws/things/T/streams/S/describe/json   -> .../description/json | .../rejected/json
  $aws/things/T/streams/S/get/json        -> .../data/json (one message per block) | .../rejected/json
and the control plane for `edgeshadow ota push/status` (admin CN only, by the ACL):
  edgeshadow/jobs/<op> {"clientToken", ...}  -> edgeshadow/jobs/<op>/accepted|rejected
  ops: create-stream {"streamId", "files": [{"fileId", "data": base64}]}, create-job {"jobId",
  "targets", "document", "rollout", "abortAfter"}, cancel-job {"jobId", "force"}, list-jobs {}.
"""
import base64
import json
import logging
from pathlib import Path

from host_tools.cloud.jobs_store import JobsError, JobStore
from host_tools.cloud.mqtt_clients import ServiceClient

log = logging.getLogger("edgeshadow.jobs")

CONTROL = "edgeshadow/jobs/"
REQUEST_FILTERS = ["$aws/things/+/jobs/$next/get", "$aws/things/+/jobs/start-next",
                   "$aws/things/+/jobs/get", "$aws/things/+/jobs/+/get", "$aws/things/+/jobs/+/update",
                   "$aws/things/+/streams/+/describe/json", "$aws/things/+/streams/+/get/json",
                   CONTROL + "+"]


class JobsService(ServiceClient):
    CLIENT_ID = "edgeshadow-jobs-service"
    WHAT = "the jobs service"
    REQUEST_FILTERS = REQUEST_FILTERS
    STORE = JobStore
    blocks_sent = 0  # stream blocks published
    bytes_sent = 0   # ... and the file bytes in them

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._client.max_queued_messages_set(0)

    def _notify(self, things):
        for t in things:
            ex = self.store.next_execution(t)
            doc = {"timestamp": int(self.clock())}
            if ex is not None:
                doc["execution"] = ex
            self._publish(f"$aws/things/{t}/jobs/notify-next", doc)

    def _on_message(self, client, userdata, msg):
        try:
            req = json.loads(msg.payload or b"{}")
            if not isinstance(req, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            req, bad = {}, f"the payload is not a JSON object ({e})"
        else:
            bad = None
        parts = msg.topic.split("/")
        try:
            if parts[0] == "edgeshadow":
                self._control(parts[2], req, bad)
            elif parts[3] == "jobs":
                self._jobs(parts[2], parts[4:], req, bad)
            elif parts[3] == "streams":
                self._streams(parts[2], parts[4], parts[5], req, bad)
        except Exception:  # a bug here must not kill the network thread
            log.exception("request on %s failed", msg.topic)

    def _jobs(self, thing, rest, req, bad):
        base = f"$aws/things/{thing}/jobs/"
        op = "/".join(rest)
        reply = base + op
        tok = {"clientToken": req["clientToken"]} if "clientToken" in req else {}
        now = {"timestamp": int(self.clock())}
        try:
            if bad:
                raise JobsError("InvalidJson", bad)
            changed = []
            if op == "$next/get":
                ex = self.store.next_execution(thing)
                out = {**tok, **now, **({"execution": ex} if ex else {})}
            elif op == "start-next":
                before = self.store.next_key(thing)
                ex, _ = self.store.start_next(thing, req)
                out = {**tok, **now, **({"execution": ex} if ex else {})}
                changed = [thing] if self.store.next_key(thing) != before else []
            elif op == "get":
                out = {**tok, **now, **self.store.pending(thing)}
            elif len(rest) == 2 and rest[1] == "get":
                out = {**tok, **now, "execution": self.store.describe(thing, rest[0])}
            elif len(rest) == 2 and rest[1] == "update":
                state, changed = self.store.update(thing, rest[0], req)
                out = {**tok, **now, "executionState": state}
            else:
                return
            self._publish(reply + "/accepted", out)
            self._notify(changed)
        except JobsError as e:
            self._publish(reply + "/rejected", {**tok, **now, "code": e.code, "message": e.message})

    def _streams(self, thing, stream_id, op, req, bad):
        base = f"$aws/things/{thing}/streams/{stream_id}/"
        try:
            if bad:
                raise JobsError("InvalidRequest", bad)
            if op == "describe":
                self._publish(base + "description/json", self.store.describe_stream(stream_id, req))
            elif op == "get":
                for block in self.store.get_stream(stream_id, req):
                    self._publish(base + "data/json", block)
                    self.blocks_sent += 1
                    self.bytes_sent += len(block.get("p", "")) * 3 // 4 - block.get("p", "").count("=")
        except JobsError as e:
            self._publish(base + "rejected/json", {"o": e.code, "m": e.message, "c": req.get("c")})

    def _control(self, op, req, bad):
        reply = CONTROL + op
        tok = {"clientToken": req.get("clientToken")}
        try:
            if bad:
                raise JobsError("InvalidRequest", bad)
            if op == "create-stream":
                files = [(f.get("fileId"), Path(f["path"]).read_bytes() if "path" in f
                          else base64.b64decode(f.get("data", ""))) for f in req.get("files") or []]
                if not files:
                    raise JobsError("InvalidRequest", "a stream needs at least one file")
                out = self.store.create_stream(req.get("streamId"), files, req.get("description", ""))
            elif op == "create-job":
                out, changed = self.store.create_job(req.get("jobId"), req.get("targets"), req.get("document"),
                                                     req.get("rollout"), req.get("abortAfter"))
                self._notify(changed)
            elif op == "cancel-job":
                self._notify(self.store.cancel_job(req.get("jobId"), force=bool(req.get("force"))))
                out = {"jobId": req.get("jobId")}
            elif op == "list-jobs":
                out = {"jobs": self.store.list_jobs()}
            else:
                raise JobsError("InvalidRequest", f"unknown operation {op}")
            self._publish(reply + "/accepted", {**tok, **out})
        except JobsError as e:
            self._publish(reply + "/rejected", {**tok, "code": e.code, "message": e.message})
