"""The state behind the local AWS IoT Jobs and MQTT-based file delivery service (no MQTT here).

`JobStore(state_dir)` keeps jobs as JSON files (state_dir/jobs/<jobId>.json, replaced whole) and
stream files as bytes (state_dir/streams/<streamId>/<fileId>.bin). Its methods take the request
documents devices publish and return the response documents AWS IoT would publish, with AWS's
field names:

- Jobs device API: `next_execution(thing)` ($next/get, notify-next), `start_next`,
  `describe(thing, job_id)`, `pending(thing)` (jobs/get), `update(thing, job_id, request)`
  (jobs/<jobId>/update: accepted `executionState`, or rejected with `code` InvalidRequest,
  ResourceNotFound, InvalidStateTransition, VersionMismatch, TerminalStateReached).
- Streams: `describe_stream(stream_id, request)` ({"c","s","d","r":[{"f","z"}]}) and
  `get_stream(stream_id, request)` (blocks {"c","f","l","i","p"} or a rejection {"o","m","c"}).
- Control plane (the `edgeshadow ota push` side): `create_stream`, `create_job` with a rollout
  (at most N executions released and not finished at once) and an abort rule (cancel the job
  after K executions FAILED, REJECTED or TIMED_OUT: queued and unreleased executions become
  CANCELED), `cancel_job`, `list_jobs`.
Every change returns the things whose next execution changed, for notify-next.
"""
import base64
import json
import os
import re
import time
from pathlib import Path

TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")
DEVICE_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")
FAILURES = ("FAILED", "REJECTED", "TIMED_OUT")
ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
STREAM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MIN_BLOCK, MAX_BLOCK = 256, 131072        # AWS's block size bounds for GetStream


class JobsError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _write_json(path, doc):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


class JobStore:
    def __init__(self, state_dir, clock=time.time):
        self.dir = Path(state_dir)
        self.jobs_dir = self.dir / "jobs"
        self.streams_dir = self.dir / "streams"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.streams_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.jobs = {}
        for p in sorted(self.jobs_dir.glob("*.json")):
            try:
                job = json.loads(p.read_text())
                self.jobs[job["jobId"]] = job
            except (OSError, ValueError, KeyError):
                continue

    def _now(self):
        return int(self.clock())

    def _save(self, job):
        _write_json(self.jobs_dir / f"{job['jobId']}.json", job)

    # -- control plane ------------------------------------------------------------------------
    def create_stream(self, stream_id, files, description=""):
        """files: [(fileId, bytes)]. A stream id is written once (AWS: update makes a new version)."""
        if not STREAM_ID_RE.match(stream_id or ""):
            raise JobsError("InvalidRequest", f"stream id {stream_id!r} must be 1-128 of [a-zA-Z0-9_-]")
        d = self.streams_dir / stream_id
        version = 1
        if (d / "stream.json").exists():
            version = json.loads((d / "stream.json").read_text())["version"] + 1
        d.mkdir(parents=True, exist_ok=True)
        sizes = []
        for fid, data in files:
            if not isinstance(fid, int) or not 0 <= fid <= 255:
                raise JobsError("InvalidRequest", f"fileId {fid!r} must be 0-255")
            tmp = d / f"{fid}.bin.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, d / f"{fid}.bin")
            sizes.append({"f": fid, "z": len(data)})
        _write_json(d / "stream.json", {"streamId": stream_id, "version": version,
                                        "description": description, "files": sizes})
        return {"streamId": stream_id, "streamVersion": version}

    def create_job(self, job_id, targets, document, rollout=None, abort_after=None):
        if not ID_RE.match(job_id or ""):
            raise JobsError("InvalidRequest", f"job id {job_id!r} must be 1-64 of [a-zA-Z0-9_-]")
        if job_id in self.jobs:
            raise JobsError("ResourceAlreadyExists", f"job {job_id} already exists")
        if not targets or len(set(targets)) != len(targets):
            raise JobsError("InvalidRequest", "targets must be a non-empty list of distinct things")
        if not isinstance(document, dict):
            raise JobsError("InvalidRequest", "the job document must be a JSON object")
        if len(json.dumps(document)) > 32768:
            raise JobsError("InvalidRequest", "the job document exceeds 32 KB")
        if rollout is not None and (not isinstance(rollout, int) or rollout < 1):
            raise JobsError("InvalidRequest", "rollout (executions at once) must be an integer >= 1")
        if abort_after is not None and (not isinstance(abort_after, int) or abort_after < 1):
            raise JobsError("InvalidRequest", "abort_after (failures) must be an integer >= 1")
        now = self._now()
        job = {"jobId": job_id, "status": "IN_PROGRESS", "document": document, "targets": list(targets),
               "createdAt": now, "lastUpdatedAt": now, "rollout": rollout, "abortAfter": abort_after,
               "reasonCode": None, "executions": {}}
        for n, thing in enumerate(targets):
            job["executions"][thing] = {"status": "QUEUED", "released": False, "queuedAt": None,
                                        "startedAt": None, "lastUpdatedAt": None, "versionNumber": 1,
                                        "executionNumber": 1, "statusDetails": {}, "order": n}
        self.jobs[job_id] = job
        changed = self._release(job)
        self._save(job)
        return {"jobId": job_id}, changed

    def cancel_job(self, job_id, reason="USER_CANCELED", force=False):
        """QUEUED executions become CANCELED; with force, IN_PROGRESS ones too (AWS's --force)."""
        job = self._job(job_id)
        changed = self._cancel(job, reason)
        if force:
            for thing, e in job["executions"].items():
                if e["status"] == "IN_PROGRESS":
                    e["status"] = "CANCELED"
                    e["lastUpdatedAt"] = self._now()
                    changed.append(thing)
        self._save(job)
        return changed

    def list_jobs(self):
        return [self._summary(j) for j in sorted(self.jobs.values(), key=lambda j: j["createdAt"])]

    def _summary(self, job):
        counts = {}
        for e in job["executions"].values():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
        return {"jobId": job["jobId"], "status": job["status"], "reasonCode": job["reasonCode"],
                "createdAt": job["createdAt"], "lastUpdatedAt": job["lastUpdatedAt"], "counts": counts,
                "executions": {t: {k: e[k] for k in ("status", "statusDetails", "versionNumber",
                                                     "lastUpdatedAt", "released")}
                               for t, e in job["executions"].items()}}

    def _job(self, job_id):
        job = self.jobs.get(job_id)
        if job is None:
            raise JobsError("ResourceNotFound", f"job {job_id} does not exist")
        return job

    def _release(self, job):
        """Queue executions up to the rollout limit; returns the things that got one."""
        if job["status"] != "IN_PROGRESS":
            return []
        ex = sorted(job["executions"].items(), key=lambda kv: kv[1]["order"])
        live = sum(1 for _, e in ex if e["released"] and e["status"] not in TERMINAL)
        out = []
        for thing, e in ex:
            if e["released"]:
                continue
            if job["rollout"] is not None and live >= job["rollout"]:
                break
            e["released"] = True
            e["queuedAt"] = e["lastUpdatedAt"] = self._now()
            live += 1
            out.append(thing)
        return out

    def _cancel(self, job, reason):
        if job["status"] != "IN_PROGRESS":
            return []
        job["status"] = "CANCELED"
        job["reasonCode"] = reason
        job["lastUpdatedAt"] = self._now()
        out = []
        for thing, e in job["executions"].items():
            if e["status"] == "QUEUED":  # in-progress executions may still finish (AWS without force)
                e["status"] = "CANCELED"
                e["lastUpdatedAt"] = self._now()
                if e["released"]:
                    out.append(thing)
        return out

    def _maybe_done(self, job):
        if job["status"] == "IN_PROGRESS" and all(e["status"] in TERMINAL for e in job["executions"].values()):
            job["status"] = "COMPLETED"
            job["lastUpdatedAt"] = self._now()

    # -- the device API -----------------------------------------------------------------------
    def _visible(self, thing):
        """[(job, execution)] of the thing, not terminal, released; IN_PROGRESS first, then by queuedAt."""
        out = []
        for job in self.jobs.values():
            e = job["executions"].get(thing)
            if e and e["released"] and e["status"] not in TERMINAL:
                out.append((job, e))
        out.sort(key=lambda je: (je[1]["status"] != "IN_PROGRESS", je[1]["queuedAt"], je[0]["createdAt"]))
        return out

    def _execution(self, thing, job, e, with_document=True):
        out = {"jobId": job["jobId"], "thingName": thing, "status": e["status"],
               "statusDetails": e["statusDetails"], "queuedAt": e["queuedAt"],
               "lastUpdatedAt": e["lastUpdatedAt"], "versionNumber": e["versionNumber"],
               "executionNumber": e["executionNumber"]}
        if e["startedAt"] is not None:
            out["startedAt"] = e["startedAt"]
        if with_document:
            out["jobDocument"] = job["document"]
        return out

    def next_execution(self, thing):
        v = self._visible(thing)
        return self._execution(thing, *v[0]) if v else None

    def next_key(self, thing):
        v = self._visible(thing)
        return (v[0][0]["jobId"], v[0][1]["status"]) if v else None

    def start_next(self, thing, request):
        v = self._visible(thing)
        if not v:
            return None, []
        job, e = v[0]
        if e["status"] == "QUEUED":
            self._set(job, e, "IN_PROGRESS", request.get("statusDetails"))
            self._save(job)
        return self._execution(thing, job, e), []

    def describe(self, thing, job_id):
        job = self.jobs.get(job_id)
        e = job and job["executions"].get(thing)
        if not e or not e["released"]:
            raise JobsError("ResourceNotFound", f"no execution of job {job_id} for {thing}")
        return self._execution(thing, job, e)

    def pending(self, thing):
        v = self._visible(thing)
        summary = lambda j, e: {"jobId": j["jobId"], "queuedAt": e["queuedAt"], "lastUpdatedAt": e["lastUpdatedAt"],
                                "versionNumber": e["versionNumber"], "executionNumber": e["executionNumber"],
                                **({"startedAt": e["startedAt"]} if e["startedAt"] else {})}
        return {"inProgressJobs": [summary(j, e) for j, e in v if e["status"] == "IN_PROGRESS"],
                "queuedJobs": [summary(j, e) for j, e in v if e["status"] == "QUEUED"]}

    def _set(self, job, e, status, details):
        now = self._now()
        if status == "IN_PROGRESS" and e["startedAt"] is None:
            e["startedAt"] = now
        e["status"] = status
        if details is not None:
            e["statusDetails"] = details
        e["versionNumber"] += 1
        e["lastUpdatedAt"] = job["lastUpdatedAt"] = now

    def update(self, thing, job_id, request):
        """(executionState dict, things whose next execution changed); JobsError to reject."""
        status = request.get("status")
        if status not in DEVICE_STATUSES:
            raise JobsError("InvalidRequest", f"status must be one of {', '.join(DEVICE_STATUSES)}")
        details = request.get("statusDetails")
        if details is not None and (not isinstance(details, dict) or
                                    not all(isinstance(k, str) and isinstance(v, str) for k, v in details.items())):
            raise JobsError("InvalidRequest", "statusDetails must map strings to strings")
        job = self.jobs.get(job_id)
        e = job and job["executions"].get(thing)
        if not e or not e["released"]:
            raise JobsError("ResourceNotFound", f"no execution of job {job_id} for {thing}")
        if e["status"] in TERMINAL:
            raise JobsError("TerminalStateReached", f"the execution is already {e['status']}")
        exp = request.get("expectedVersion")
        if exp is not None and exp != e["versionNumber"]:
            raise JobsError("VersionMismatch", f"expected version {exp}, the execution is at {e['versionNumber']}")
        before = {t: self.next_key(t) for t in job["executions"]}
        self._set(job, e, status, details)
        if status in TERMINAL:
            failures = sum(1 for x in job["executions"].values() if x["status"] in FAILURES)
            if job["abortAfter"] is not None and failures >= job["abortAfter"]:
                self._cancel(job, f"ABORTED: {failures} execution(s) failed (limit {job['abortAfter']})")
            else:
                self._release(job)
            self._maybe_done(job)
        self._save(job)
        changed = [t for t in job["executions"] if self.next_key(t) != before[t]]
        state = {"status": e["status"], "statusDetails": e["statusDetails"], "versionNumber": e["versionNumber"]}
        if request.get("includeJobDocument"):
            state["jobDocument"] = job["document"]
        return state, changed

    # -- streams ------------------------------------------------------------------------------
    def _stream(self, stream_id):
        try:
            return json.loads((self.streams_dir / stream_id / "stream.json").read_text())
        except (OSError, ValueError):
            raise JobsError("ResourceNotFound", f"stream {stream_id} does not exist")

    def describe_stream(self, stream_id, request):
        s = self._stream(stream_id)
        return {"c": request.get("c"), "s": s["version"], "d": s["description"], "r": s["files"]}

    def get_stream(self, stream_id, request):
        """[data documents] for a GetStream request; JobsError to reject."""
        s = self._stream(stream_id)
        if request.get("s") is not None and request["s"] != s["version"]:
            raise JobsError("VersionMismatch", f"stream version is {s['version']}")
        fid, size, off, n = request.get("f"), request.get("l"), request.get("o", 0), request.get("n", 1)
        if not any(f["f"] == fid for f in s["files"]):
            raise JobsError("ResourceNotFound", f"stream {stream_id} has no file {fid!r}")
        if not isinstance(size, int) or not MIN_BLOCK <= size <= MAX_BLOCK:
            raise JobsError("BlockSizeOutOfBounds", f"block size must be {MIN_BLOCK} to {MAX_BLOCK} bytes")
        if not isinstance(off, int) or not isinstance(n, int) or off < 0 or n < 1:
            raise JobsError("InvalidRequest", "o (block offset) and n (blocks) must be integers, n >= 1")
        data = (self.streams_dir / stream_id / f"{fid}.bin").read_bytes()
        last = (len(data) - 1) // size if data else -1
        if off > last:
            raise JobsError("OffsetOutOfBounds", f"block {off} is past the file's end ({len(data)} bytes)")
        out = []
        for i in range(off, min(off + n, last + 1)):
            chunk = data[i * size:(i + 1) * size]
            out.append({"c": request.get("c"), "f": fid, "l": len(chunk), "i": i,
                        "p": base64.b64encode(chunk).decode()})
        return out
