# AWS IoT MQTT-based file delivery on the device: DescribeStream (the sizes of a stream's files)
# and GetStream (its blocks, in order, WINDOW at a time, asked again after a silence), answers
# routed here by ota/jobs.py. Used by the job runner (ota/agent.py) and the image update
# (ota/image.py), imported only while a job runs.
import binascii

import asyncio

from ota import OtaError, manifest

BLOCK = 1024          # bytes per stream block: one block is ~1.4 KB of JSON on the wire
WINDOW = 4            # blocks asked for per request
TIMEOUT_S = 10        # a request unanswered this long is sent again
RETRIES = 5


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


async def describe(jobs, doc):
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


async def fetch_manifest(jobs, doc, sizes):
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
