# Runs one update job: manifest checked (signature first) before anything is written, files
# fetched over AWS IoT MQTT-based file delivery into /update/stage (each checked by size and
# SHA-256), then the staged folder becomes the inactive slot and otaboot.switch() makes it the
# active one, on trial, in one rename; the board restarts into it. Imported only while a job runs.
# A restart at any moment resumes: finished files are kept (/update/stage/.progress), the file
# being written goes on from the bytes it holds (hashed again from flash), a slot already in place
# is switched to without a new download. A "romfs" update is one file (the app as a ROMFS image)
# in the slot; otaboot copies it into the ROMFS partition at boot.
import binascii
import gc
import hashlib
import json
import os
import sys

import asyncio

import otaboot
from ota import OtaError, manifest
from ota.stream import block_size, describe, fetch, fetch_manifest
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
    """Cuts the stream's bytes into the manifest's files (entries taken one at a time from an
    iterable), hashing as it writes; i: entries already done (skipped)."""

    def __init__(self, files, i, progress, resume=False):
        self.it, self.i, self.progress = iter(files), i, progress
        self.fd = self.f = self.h = None
        self.n = 0
        for _ in range(i):
            next(self.it, None)
        self._open(resume)

    def _open(self, resume=False):
        while True:
            self.fd = fd = next(self.it, None)
            if fd is None:
                return
            path = _stage() + "/" + fd["path"]
            _mkdirs(path.rsplit("/", 1)[0])
            self.h = hashlib.sha256()
            self.n = _rehash(path + ".part", self.h, fd["size"]) if resume else 0
            self.f = open(path + ".part", "ab" if self.n else "wb")
            resume = False
            if fd["size"] > self.n:
                return
            self._close()

    def _close(self):
        fd = self.fd
        self.f.close()
        self.f = None
        path = _stage() + "/" + fd["path"]
        got = binascii.hexlify(self.h.digest()).decode()
        if got != fd["sha256"]:
            os.remove(path + ".part")
            raise OtaError("FAILED", "%s: SHA-256 %s..., the manifest says %s..." % (fd["path"], got[:12], fd["sha256"][:12]))
        os.rename(path + ".part", path)
        self.i += 1
        self.progress(self.i)

    @property
    def done(self):
        return self.fd is None

    def feed(self, data):
        mv = memoryview(data)
        while len(mv) and not self.done:
            take = min(len(mv), self.fd["size"] - self.n)
            self.f.write(mv[:take])
            self.h.update(mv[:take])
            self.n += take
            mv = mv[take:]
            if self.n == self.fd["size"]:
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


def _feed(path, h):
    """Feed the file at path to h in small pieces; its length, or None if it cannot be read."""
    buf = bytearray(256)
    n = 0
    try:
        with open(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    return n
                h.update(memoryview(buf)[:k])
                n += k
    except OSError:
        return None


def _rehash(path, h, most):
    """Bytes of path (a file cut by a restart) fed to h: where its download goes on; 0 to start
    again (none, or more than the file should hold)."""
    n = _feed(path, h)
    return n if n is not None and n <= most else 0


def _incoming():
    return otaboot.DIR + "/incoming.json"   # the manifest as fetched, until it is checked


async def _to_slot(jobs, job, doc, m, digest, st):
    """The package's files into the inactive slot, then the switch to it: the slot's name, or None
    when the service ended the job on the way (nothing switched)."""
    target = "b" if st.get("active") == "a" else "a"
    slot_dir = otaboot.DIR + "/" + target
    if _digest_of(slot_dir + "/.manifest") != digest:   # else: staged and moved before a restart
        if not await _going_on(jobs, job, {"step": "download", "version": m["version"]}):
            return None
        done = _stage_begin(job, digest, m, st.get("active"))
        await _download(jobs, doc, m, job, digest, done)
        rmtree(slot_dir)
        os.rename(_stage(), slot_dir)
    rmtree(_incoming())
    prev = _keep_deployed(m, st, target)
    # the last word before the switch: a job cancelled during the download is not applied
    if not await _going_on(jobs, job, {"step": "switch", "version": m["version"]}):
        rmtree(slot_dir)
        return None
    otaboot.switch(target, job, m["version"], m["seq"], m.get("trial_s", otaboot.TRIAL_S), prev)
    return target


def _keep_deployed(m, st, target):
    """The first ROMFS update of a board running what was deployed over USB: that image (in the
    partition) is to be saved as the other slot, what a rollback returns to; otaboot does it at
    the next boot (in a clean heap), before the copy. (slot, version) or None."""
    if m["kind"] != "romfs" or st.get("active"):
        return None
    other = "b" if target == "a" else "a"
    rmtree(otaboot.DIR + "/" + other)
    from edge import VERSION
    return other, VERSION


def _check_romfs(m):
    """A ROMFS update needs a ROMFS partition that holds it (checked before anything is written)."""
    import otaboot_rom
    room = otaboot_rom.room(otaboot._DEV)
    del otaboot_rom
    sys.modules.pop("otaboot_rom", None)
    if not room:
        raise OtaError("REJECTED", "this board has no ROMFS partition: send it an app update built "
                                   "without --romfs")
    if m["size"] > room:
        raise OtaError("REJECTED", "the ROMFS image (%d bytes) does not fit the partition (%d bytes)"
                       % (m["size"], room))


async def _checked_manifest(jobs, doc, st):
    """(manifest's header, SHA-256 of its bytes in hex): fetched to flash, then signature, board,
    sequence and the stream's size checked; its files are read from flash when they are needed."""
    manifest.check_document(doc)
    sizes = await describe(jobs, doc)
    _mkdirs(otaboot.DIR)
    digest = await fetch_manifest(jobs, doc, sizes, _incoming())
    manifest.verify(doc, digest, manifest.read_pubkey())
    m = manifest.parse_file(_incoming(), _board_arch(), st.get("seq", 0), _board("chip"))
    if m["kind"] == "romfs":
        _check_romfs(m)
    if sizes.get(doc.get("fileId", 0)) != m["size"]:  # a truncated or padded stream file
        raise OtaError("REJECTED", "stream %s file %s holds %s bytes, the manifest says %d"
                       % (doc["streamId"], doc.get("fileId", 0), sizes.get(doc.get("fileId", 0), "no"), m["size"]))
    return m, binascii.hexlify(digest).decode()


async def run(jobs, ex, st):
    job = ex.get("jobId")
    doc = ex.get("jobDocument")
    m = None
    try:
        m, digest = await _checked_manifest(jobs, doc, st)
        if m["kind"] == "image":
            rmtree(_incoming())
            from ota import image
            await image.run(jobs, job, doc, m)
            return
        target = await _to_slot(jobs, job, doc, m, digest, st)
        if target is None:
            return
    except asyncio.TimeoutError:  # no answer from the service (an OSError on CPython): try later
        raise
    except (OSError, MemoryError, OtaError) as e:  # flash full or failing: this job cannot go on
        if not isinstance(e, OtaError):
            e = OtaError("FAILED", "flash: %r" % (e,))
        jobs.log("ota: job %s %s: %s" % (job, e.status, e.reason))
        rmtree(_incoming())
        if e.status == "FAILED" and (m is None or m["kind"] != "image"):
            rmtree(_stage())
        await jobs.update(job, e.status, {"reason": e.reason[:200]})
        return
    jobs.log("ota: job %s: version %s in slot %s, restarting into it" % (job, m["version"], target))
    import machine
    machine.reset()


def _digest_of(p):
    """SHA-256 of the file at p, read in small pieces; None if there is none."""
    h = hashlib.sha256()
    return None if _feed(p, h) is None else binascii.hexlify(h.digest()).decode()


def _free_bytes():
    try:
        s = os.statvfs("/")
        return s[0] * s[4]
    except (OSError, AttributeError):
        return None


def _stage_begin(job, digest, m, active):
    """The stage for this job: kept (returns the files already done) or made anew with the checked
    manifest moved into it (the marker a finished slot carries); the free space is checked first."""
    prog = _read(_stage() + "/.progress")
    if prog:
        p = prog.split()
        if len(p) == 3 and p[0] == job and p[1] == digest and _digest_of(_stage() + "/.manifest") == digest:
            return int(p[2])   # resumed (None: a fresh stage)
    rmtree(_stage())
    free = _free_bytes()
    need = m["size"] * (2 if m["kind"] == "romfs" and not active else 1)  # + the deployed image kept
    if free is not None and free < need + 8192:
        raise OtaError("FAILED", "not enough flash: %d bytes free, the update needs %d" % (free, need))
    _mkdirs(_stage())
    os.rename(_incoming(), _stage() + "/.manifest")
    write_atomic(_stage() + "/.progress", "%s %s 0" % (job, digest))
    return None


async def _download(jobs, doc, m, job, digest, done):
    def progress(i):
        write_atomic(_stage() + "/.progress", "%s %s %d" % (job, digest, i))

    w = _Writer(manifest.files(_stage() + "/.manifest", m), done or 0, progress, done is not None)
    if w.done:
        return
    pos = w.fd["offset"] + w.n
    if pos:
        jobs.log("ota: job %s: resuming the download at file %d, byte %d" % (job, w.i + 1, pos))
    bs = block_size()
    try:
        await fetch(jobs, doc, m["size"], pos // bs, pos % bs, w.feed, lambda: w.done, None, bs)
    finally:
        w.abort()
