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
from ota.stream import BLOCK, describe, fetch, fetch_manifest
from store import write_atomic



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


async def _to_slot(jobs, job, doc, m, text, st):
    """The package's files into the inactive slot, then the switch to it: the slot's name, or None
    when the service ended the job on the way (nothing switched)."""
    digest = binascii.hexlify(hashlib.sha256(text).digest()).decode()
    target = "b" if st.get("active") == "a" else "a"
    slot_dir = otaboot.DIR + "/" + target
    if _read_bytes(slot_dir + "/.manifest") != text:   # else: staged and moved before a restart
        if not await _going_on(jobs, job, {"step": "download", "version": m["version"]}):
            return None
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
        return None
    otaboot.switch(target, job, m["version"], m["seq"], m.get("trial_s", otaboot.TRIAL_S))
    return target


async def _checked_manifest(jobs, doc, st):
    """(manifest, its bytes): signature, board, sequence and the stream's size checked."""
    manifest.check_document(doc)
    sizes = await describe(jobs, doc)
    text = await fetch_manifest(jobs, doc, sizes)
    m = manifest.check(doc, text, manifest.read_pubkey(), _board_arch(), st.get("seq", 0), _board("chip"))
    gc.collect()
    if sizes.get(doc.get("fileId", 0)) != m["size"]:  # a truncated or padded stream file
        raise OtaError("REJECTED", "stream %s file %s holds %s bytes, the manifest says %d"
                       % (doc["streamId"], doc.get("fileId", 0), sizes.get(doc.get("fileId", 0), "no"), m["size"]))
    return m, text


async def run(jobs, ex, st):
    job = ex.get("jobId")
    doc = ex.get("jobDocument")
    m = None
    try:
        m, text = await _checked_manifest(jobs, doc, st)
        if m["kind"] == "image":
            del text
            from ota import image
            await image.run(jobs, job, doc, m)
            return
        target = await _to_slot(jobs, job, doc, m, text, st)
        if target is None:
            return
    except asyncio.TimeoutError:  # no answer from the service (an OSError on CPython): try later
        raise
    except (OSError, MemoryError, OtaError) as e:  # flash full or failing: this job cannot go on
        if not isinstance(e, OtaError):
            e = OtaError("FAILED", "flash: %r" % (e,))
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
