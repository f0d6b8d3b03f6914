# MicroPython image updates on boards with OTA partitions (esp32.Partition): the image is written
# block by block into the next update partition, its header checked (magic, chip id) before the
# first write and its SHA-256 after the last, then set_boot() and a restart. ESP-IDF's bootloader
# boots it "pending verify"; otaboot.confirm() marks it valid once the app has connected and
# reported, and a reset before that makes the bootloader go back to the previous partition.
# Imported only for an image job. A restart during the download starts it again from block 0.
import hashlib
import binascii

import otaboot
from ota import OtaError
from ota.stream import block_size, fetch

IMAGE_MAGIC = 0xE9
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c6": 13, "esp32h2": 16}


class _PartitionWriter:
    """The image written as it comes: each erase block erased when the image reaches it, the bytes
    written at their offset (esp32.Partition.writeblocks(block, buf, offset)); no block-sized
    buffer (4 KB in one piece is often not to be had in a fragmented heap). The header is checked
    on the first stream block, before anything is written."""

    def __init__(self, part, size, chip):
        self.part, self.size, self.chip = part, size, chip
        self.bs = part.ioctl(5, 0) or 4096
        self.n = 0
        self.h = hashlib.sha256()

    def _header(self, b):
        if len(b) < 14 or b[0] != IMAGE_MAGIC:
            raise OtaError("FAILED", "not an ESP firmware image (first byte 0x%02x, expected 0xE9)" % b[0])
        cid = b[12] | (b[13] << 8)
        if cid != CHIP_IDS.get(self.chip):
            raise OtaError("FAILED", "the image is for chip id %d, this board is %s (chip id %s)"
                           % (cid, self.chip, CHIP_IDS.get(self.chip)))

    def feed(self, data):
        mv = memoryview(data)
        if self.n == 0:
            self._header(mv)  # before anything is written to the partition
        self.h.update(mv)
        while len(mv):
            block, off = divmod(self.n, self.bs)
            if off == 0:
                self.part.ioctl(6, block)
            take = min(len(mv), self.bs - off)
            self.part.writeblocks(block, mv[:take], off)
            self.n += take
            mv = mv[take:]

    @property
    def done(self):
        return self.n >= self.size

    def finish(self, sha256):
        got = binascii.hexlify(self.h.digest()).decode()
        if got != sha256:
            raise OtaError("FAILED", "image SHA-256 %s..., the manifest says %s..." % (got[:12], sha256[:12]))


async def run(jobs, job, doc, m):
    import esp32
    try:
        part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    except OSError:
        raise OtaError("REJECTED", "this board has no OTA partitions: flash a MicroPython build with an "
                                   "OTA partition table first")
    label, psize = part.info()[4], part.info()[3]
    if m["size"] > psize:
        raise OtaError("REJECTED", "the image (%d bytes) does not fit partition %s (%d bytes)"
                       % (m["size"], label, psize))
    from ota.agent import _going_on
    if not await _going_on(jobs, job, {"step": "download", "version": m["version"], "partition": label}):
        return
    w = _PartitionWriter(part, m["size"], m["chip"])
    await fetch(jobs, doc, m["size"], 0, 0, w.feed, lambda: w.done, None, block_size())
    w.finish(m["sha256"])
    if not await _going_on(jobs, job, {"step": "switch", "version": m["version"], "partition": label}):
        return
    part.set_boot()
    otaboot.switch_image(label, job, m["version"], m["seq"], m.get("trial_s", otaboot.TRIAL_S))
    jobs.log("ota: job %s: image %s in %s, restarting into it" % (job, m["version"], label))
    import machine
    machine.reset()
