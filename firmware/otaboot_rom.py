# The ROMFS partition's side of the update pointer (see otaboot.py): root-only like otaboot (never
# in an update, never in the ROMFS image it rewrites), imported only while a ROMFS slot is copied
# into the partition at boot or the USB-deployed image is kept, then dropped.
#
# Only what the ESP32 port offers (ports/esp32/esp32_partition.c): vfs.rom_ioctl(2, 0) is the
# "romfs" partition as an esp32.Partition, readable in place as a buffer (the mapped flash) and
# written with ioctl(6, block) (erase 4 KB) then writeblocks(block, buf, offset); rom_ioctl's
# write commands (3..5) are refused there. 1 KB of RAM for the copy.
import hashlib
import os
import sys

_MAGIC = b"\xd2\xcd\x31"
_BUF = 1024


def rom_dev(dev=None):
    """The ROMFS partition (dev if given), or None."""
    if dev is not None:
        return dev
    try:
        import vfs
        if vfs.rom_ioctl(1) > 0:
            dev = vfs.rom_ioctl(2, 0)
            if not isinstance(dev, int):
                return dev
    except (ImportError, AttributeError, OSError):
        pass
    return None


def room(dev=None):
    dev = rom_dev(dev)
    return dev.ioctl(4, 0) * dev.ioctl(5, 0) if dev is not None else 0


def rom_size(mv):
    """Bytes of the ROMFS image at the start of mv (its header's length), 0 if it holds none."""
    if bytes(mv[:3]) != _MAGIC:
        return 0
    n, i = 0, 3
    while i < 9:
        b = mv[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return i + n
    return 0


def _file_sha(path, buf):
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                return h.digest(), n
            h.update(memoryview(buf)[:k])
            n += k


def _ms():
    import time
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)


def _copy(dev, path, n, buf):
    """Erase and write the partition's first n bytes from the file, one erase block at a time, the
    first block (the image's header) last: a power cut in between leaves a partition holding no
    image, which the runtime does not mount and the next boot copies again, never a header over
    half an image (a boot that imports from it reads garbage)."""
    try:
        import vfs
        vfs.umount("/rom")   # nothing is imported from it yet: boot.py selects the slot first
    except (ImportError, OSError):
        pass
    bs = dev.ioctl(5, 0)
    dev.ioctl(6, 0)
    with open(path, "rb") as f:
        for start, end in ((bs, n), (0, min(bs, n))):
            f.seek(start)
            off = start
            while off < end:
                if off % bs == 0 and off:
                    dev.ioctl(6, off // bs)
                k = f.readinto(buf)
                dev.writeblocks(off // bs, memoryview(buf)[:k], off % bs)
                off += k
    dev.ioctl(3, 0)


def sync(path, dev=None, name=None):
    """Make the partition hold the image in the file at path: True if it was copied (and
    verified), False if it held it already. OSError when there is no partition or the copy does not
    verify."""
    dev = rom_dev(dev)
    if dev is None:
        raise OSError("%s is a ROMFS image and this board has no ROMFS partition" % path)
    buf = bytearray(_BUF)
    want, n = _file_sha(path, buf)
    mv = memoryview(dev)
    if hashlib.sha256(mv[:n]).digest() == want:
        return False
    name = name or path
    print("ota: copying %s into the ROMFS partition (%d bytes)" % (name, n))
    t = _ms()
    _copy(dev, path, n, buf)
    if hashlib.sha256(mv[:n]).digest() != want:
        raise OSError("the ROMFS partition does not hold %s after the copy" % path)
    try:  # mounted again as at start-up (it may have held no image then)
        import vfs
        vfs.mount(vfs.VfsRom(dev), "/rom")
        if "/rom" not in sys.path:
            sys.path.extend(("/rom", "/rom/lib"))
    except (ImportError, AttributeError):
        pass
    print("ota: ROMFS partition holds %s (copied in %d ms)" % (name, (_ms() - t) % (1 << 30)))
    return True


def keep(d, name, version, dev=None):
    """The image in the partition saved as the slot folder d (name, then the .manifest marker),
    through 1 KB of RAM (not from the mapped flash straight to the filesystem). True if the
    partition held an image."""
    dev = rom_dev(dev)
    mv = memoryview(dev) if dev is not None else b""
    n = rom_size(mv)
    if not n:
        return False
    try:
        os.mkdir(d)
    except OSError:  # there from a keep a power cut stopped: written again
        pass
    buf = bytearray(_BUF)
    with open(d + "/" + name + ".part", "wb") as f:
        for off in range(0, n, _BUF):
            k = min(_BUF, n - off)
            buf[:k] = mv[off:off + k]
            f.write(memoryview(buf)[:k])
    os.rename(d + "/" + name + ".part", d + "/" + name)
    import json
    with open(d + "/.manifest", "w") as f:
        f.write(json.dumps({"kind": "romfs", "version": version, "size": n, "deployed": True}))
    return True


def boot(st, slot, top, save, slot_ok, dev=None):
    """otaboot.select()'s ROMFS step for the active slot: first the USB-deployed image saved as the
    slot st["keep"] names (while the partition still holds it: before any copy; redone if cut, the
    slot's .manifest is written last; no image there: no previous slot), then the copy. st["rom"] is
    cleared before a copy, so after a cut copy the next boot checks and copies again."""
    k = st.get("keep")
    if k:
        if not slot_ok(k["slot"]) and not keep("%s/%s" % (top, k["slot"]), "romfs.img", k["version"], dev):
            st["previous"] = None
        st["keep"] = None
        save(st)
    if st.get("rom") is not None:
        st["rom"] = None
        save(st)
    copied = sync("%s/%s/romfs.img" % (top, slot), dev, "slot " + slot)
    st["rom"] = slot
    save(st)
    return copied
