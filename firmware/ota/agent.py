# Runs one update job: manifest checked (signature first) before anything is written, files
# fetched over AWS IoT MQTT-based file delivery into /update/stage (each checked by size and
# SHA-256), then the staged folder becomes the inactive slot and otaboot.switch() makes it the
# active one, on trial, in one rename; the board restarts into it. Imported only while a job runs.
# A restart at any moment resumes: finished files are kept (/update/stage/.progress), the file
# being written starts again, a slot already in place is switched to without a new download.
import binascii
import gc
import hashlib
import json
import os

import asyncio

import otaboot
from ota import OtaError, manifest
from store import write_atomic

BLOCK = 1024          # bytes per stream block: one block is ~1.4 KB of JSON on the wire
WINDOW = 4            # blocks asked for per request
TIMEOUT_S = 10        # a request unanswered this long is sent again
RETRIES = 5


def _stage():
    return otaboot.DIR + "/stage"


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def rmtree(p):
    if not _exists(p):
        return
    if _isdir(p):
        for n in os.listdir(p):
            rmtree(p + "/" + n)
        os.rmdir(p)
    else:
        os.remove(p)


def _mkdirs(p):
    cur = ""
    for part in p.split("/"):
        if not part:
            continue
        cur += "/" + part
        if not _isdir(cur):
            os.mkdir(cur)


def _board(key):
    try:
        with open("/board.json") as f:
            return json.load(f).get(key)
    except (OSError, ValueError):
        return None


def _board_arch():
    return _board("mpy_arch")


def _read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError:
        return None


class _Writer:
    """Cuts the stream's bytes into the manifest's files, hashing as it writes."""

    def __init__(self, files, i, progress):
        self.files, self.i, self.progress = files, i, progress
        self.f = self.h = None
        self.n = 0
        self._open()

    def _open(self):
        while self.i < len(self.files):
            fd = self.files[self.i]
            path = _stage() + "/" + fd["path"]
            _mkdirs(path.rsplit("/", 1)[0])
            self.f = open(path + ".part", "wb")
            self.h = hashlib.sha256()
            self.n = 0
            if fd["size"]:
                return
            self._close()

    def _close(self):
        fd = self.files[self.i]
        self.f.close()
        path = _stage() + "/" + fd["path"]
        got = binascii.hexlify(self.h.digest()).decode()
        if got != fd["sha256"]:
            os.remove(path + ".part")
            raise OtaError("FAILED", "%s: SHA-256 %s..., the manifest says %s..." % (fd["path"], got[:12], fd["sha256"][:12]))
        os.rename(path + ".part", path)
        self.i += 1
        self.progress(self.i)
        self.f = None

    @property
    def done(self):
        return self.i >= len(self.files)

    def feed(self, data):
        mv = memoryview(data)
        while len(mv) and not self.done:
            fd = self.files[self.i]
            take = min(len(mv), fd["size"] - self.n)
            self.f.write(mv[:take])
            self.h.update(mv[:take])
            self.n += take
            mv = mv[take:]
            if self.n == fd["size"]:
                self._close()
                self._open()

    def abort(self):
        if self.f is not None:
            self.f.close()


async def _going_on(jobs, job, details):
    """Report progress; False if the service says the job is over for us (cancelled, removed)."""
    res = await jobs.update(job, "IN_PROGRESS", details)
    if res is None or not res[0]:
        jobs.log("ota: job %s is over (%s): not applied" % (job, res and res[1].get("code")))
        return False
    return True


async def run(jobs, ex, st):
    job = ex.get("jobId")
    doc = ex.get("jobDocument")
    m = None
    try:
        manifest.check_document(doc)
        sizes = await _describe(jobs, doc)
        text = await _fetch_manifest(jobs, doc, sizes)
        m = manifest.check(doc, text, manifest.read_pubkey(), _board_arch(), st.get("seq", 0), _board("chip"))
        gc.collect()
        if sizes.get(doc.get("fileId", 0)) != m["size"]:  # a truncated or padded stream file
            raise OtaError("REJECTED", "stream %s file %s holds %s bytes, the manifest says %d"
                           % (doc["streamId"], doc.get("fileId", 0), sizes.get(doc.get("fileId", 0), "no"), m["size"]))
        if m["kind"] == "image":
            del text
            from ota import image
            await image.run(jobs, job, doc, m)
            return
        digest = binascii.hexlify(hashlib.sha256(text).digest()).decode()
        target = "b" if st.get("active") == "a" else "a"
        slot_dir = otaboot.DIR + "/" + target
        if _read_bytes(slot_dir + "/.manifest") != text:   # else: staged and moved before a restart
            if not await _going_on(jobs, job, {"step": "download", "version": m["version"]}):
                return
            done = _stage_begin(job, digest, text, m)
            text = None  # on flash now: the download gets its RAM
            gc.collect()
            await _download(jobs, doc, m, job, digest, done)
            rmtree(slot_dir)
            os.rename(_stage(), slot_dir)
        text = None
        # the last word before the switch: a job cancelled during the download is not applied
        if not await _going_on(jobs, job, {"step": "switch", "version": m["version"]}):
            rmtree(slot_dir)
            return
        otaboot.switch(target, job, m["version"], m["seq"], m.get("trial_s", otaboot.TRIAL_S))
    except asyncio.TimeoutError:  # no answer from the service (an OSError on CPython): try later
        raise
    except (OSError, MemoryError) as e:  # the flash is full or failing: this job cannot go on
        e = OtaError("FAILED", "flash: %r" % (e,))
        jobs.log("ota: job %s FAILED: %s" % (job, e.reason))
        if m is None or m["kind"] != "image":
            rmtree(_stage())
        await jobs.update(job, "FAILED", {"reason": e.reason[:200]})
        return
    except OtaError as e:
        jobs.log("ota: job %s %s: %s" % (job, e.status, e.reason))
        if e.status == "FAILED" and (m is None or m["kind"] != "image"):
            rmtree(_stage())
        await jobs.update(job, e.status, {"reason": e.reason[:200]})
        return
    jobs.log("ota: job %s: version %s in slot %s, restarting into it" % (job, m["version"], target))
    import machine
    machine.reset()


def _read_bytes(p):
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError:
        return None


async def _fetch_manifest(jobs, doc, sizes):
    """The manifest's bytes from the stream (nothing written: it is checked before anything is)."""
    fid = doc.get("manifestFileId", 1)
    n = sizes.get(fid)
    if not isinstance(n, int) or not 0 < n <= manifest.MAX_BYTES:
        raise OtaError("REJECTED", "stream %s: manifest file %s has %s bytes (at most %d)"
                       % (doc["streamId"], fid, n, manifest.MAX_BYTES))
    buf = bytearray(n)
    pos = [0]

    def feed(data):
        take = min(len(data), n - pos[0])
        buf[pos[0]:pos[0] + take] = data[:take]
        pos[0] += take
    await fetch(jobs, doc, n, 0, 0, feed, lambda: pos[0] >= n, fid)
    return buf


class _Sink:
    """Stream responses for one stream, queued for the coroutine that waits on them."""

    def __init__(self, jobs, stream):
        self.jobs, self.prefix, self.got = jobs, "streams/%s/" % stream, []
        self.ev = asyncio.Event()
        jobs.sink = self.put

    def put(self, sub, d):
        if sub.startswith(self.prefix):
            self.got.append((sub[len(self.prefix):], d))
            self.ev.set()

    async def get(self, timeout):
        if not self.got:
            self.ev = asyncio.Event()
            try:
                await asyncio.wait_for(self.ev.wait(), timeout)
            except asyncio.TimeoutError:
                return None, None
        return self.got.pop(0) if self.got else (None, None)


async def _describe(jobs, doc):
    """DescribeStream: {fileId: size} of the stream's files."""
    sid = doc.get("streamId")
    sink = _Sink(jobs, sid)
    try:
        for _ in range(RETRIES):
            await jobs._publish("streams/%s/describe/json" % sid, {"c": jobs.token()}, qos=0)
            while True:
                sub, d = await sink.get(TIMEOUT_S)
                if sub is None or sub in ("description/json", "rejected/json"):
                    break
            if sub == "rejected/json":
                raise OtaError("REJECTED", "stream %s: %s %s" % (sid, d.get("o"), d.get("m")))
            if sub is not None:
                return {f.get("f"): f.get("z") for f in d.get("r", ())}
        raise OtaError("FAILED", "stream %s: no answer to DescribeStream" % sid)
    finally:
        jobs.sink = None


def _free_bytes():
    try:
        s = os.statvfs("/")
        return s[0] * s[4]
    except (OSError, AttributeError):
        return None


def _stage_begin(job, digest, text, m):
    """The stage for this job: kept (returns the files already done) or made anew with the
    manifest in it (the marker a finished slot carries); the free space is checked first."""
    prog = _read(_stage() + "/.progress")
    if prog:
        p = prog.split()
        if len(p) == 3 and p[0] == job and p[1] == digest and _read_bytes(_stage() + "/.manifest") == text:
            return int(p[2])
    rmtree(_stage())
    free = _free_bytes()
    if free is not None and free < m["size"] + 8192:
        raise OtaError("FAILED", "not enough flash: %d bytes free, the update needs %d" % (free, m["size"]))
    _mkdirs(_stage())
    with open(_stage() + "/.manifest", "wb") as f:
        f.write(text)
    return 0


async def _download(jobs, doc, m, job, digest, done):
    files = m["files"]
    if done:
        jobs.log("ota: job %s: resuming the download at file %d of %d" % (job, done + 1, len(files)))
    if done >= len(files):
        return

    def progress(i):
        write_atomic(_stage() + "/.progress", "%s %s %d" % (job, digest, i))

    w = _Writer(files, done, progress)
    if w.done:
        return
    pos = files[w.i]["offset"]
    try:
        await fetch(jobs, doc, m["size"], pos // BLOCK, pos % BLOCK, w.feed, lambda: w.done)
    finally:
        w.abort()


async def fetch(jobs, doc, size, block, skip, feed, done, file_id=None):
    """GetStream blocks from `block` on, in order, each handed to feed(bytes) (the first one less
    `skip` bytes) until done(); requests WINDOW blocks at a time, asks again after a silence."""
    last = (size - 1) // BLOCK
    sid = doc.get("streamId")
    sink = _Sink(jobs, sid)
    fails = 0
    try:
        while not done():
            if not jobs.conn.up:  # a link outage is waited out, not counted against the stream
                await jobs.conn.wait_up()
            if block > last:
                raise OtaError("FAILED", "stream %s ended before the manifest's %d bytes" % (sid, size))
            n = min(WINDOW, last - block + 1)
            del sink.got[:]
            fid = doc.get("fileId", 0) if file_id is None else file_id
            await jobs._publish("streams/%s/get/json" % sid, {"c": jobs.token(), "f": fid,
                                                             "l": BLOCK, "o": block, "n": n}, qos=0)
            want = block + n
            while block < want:
                sub, d = await sink.get(TIMEOUT_S)
                if sub is None:
                    break
                if sub == "rejected/json":
                    raise OtaError("FAILED", "stream %s: %s %s" % (sid, d.get("o"), d.get("m")))
                if sub != "data/json" or d.get("i") != block:
                    continue
                data = binascii.a2b_base64(d["p"])
                feed(data[skip:] if skip else data)
                skip = 0
                block += 1
                fails = 0
            if block < want and not done():
                fails += 1
                if fails > RETRIES:
                    raise OtaError("FAILED", "stream %s: no data for block %d after %d requests" % (sid, block, RETRIES))
    finally:
        jobs.sink = None
