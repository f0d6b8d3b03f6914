# The board's update pointer: which app slot runs, and whether it is still on trial (pending).
# Root-only, like boot.py and main.py: an update never replaces it, so a broken update cannot break
# the rollback. boot.py calls select() before anything else is imported; the running app calls
# confirm() once it has connected and reported; main.py calls crashed() when the app raises.
#
# /update/state.json (replaced whole, by rename: a power cut leaves the old or the new file):
#   {"active": "a" | "b" | null,   slot on sys.path, null = the factory firmware at /
#    "previous": slot or null,     what a rollback returns to
#    "pending": {"job", "version", "tries"} or null,   a new slot on trial
#    "result": {"job", "status", "reason", "version"} or null,   still to report to the job
#    "seq": n}                     seq of the running manifest (older ones are refused)
#
# A ROMFS slot (boards with a ROMFS partition; a "romfs" manifest) holds one file, romfs.img: the
# app as a ROMFS image. The firmware runs from the partition (in place: ~80 KB of heap, where files
# need ~112-160 KB), so at boot select() makes the partition hold the active slot's image: copied
# when its SHA-256 differs (erase and write block by block through the partition object the ESP32
# port gives, vfs.rom_ioctl(2, 0); 1 KB of buffer), verified, mounted again. A cut copy is simply
# redone at the next boot; a rollback copies the previous slot's image back. The image deployed over
# USB is kept as a slot (keep_rom) before the first update overwrites it.
import json
import os
import sys

DIR = "/update"      # tests point this elsewhere
MAX_TRIES = 3        # boots a pending slot gets to confirm before the board rolls back
TRIAL_S = 300        # default: seconds a pending version gets to confirm (manifest "trial_s")


def load():
    try:
        with open(DIR + "/state.json") as f:
            st = json.load(f)
        return st if isinstance(st, dict) else None
    except (OSError, ValueError):
        return None


def save(st):
    path = DIR + "/state.json"
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(st))
    os.rename(path + ".tmp", path)


def slot_ok(slot):
    try:
        os.stat("%s/%s/.manifest" % (DIR, slot))
        return True
    except OSError:
        return False


ROM_IMG = "romfs.img"
_ROM_MAGIC = b"\xd2\xcd\x31"


def rom_dev():
    """The ROMFS partition (vfs.rom_ioctl(2, 0): an esp32.Partition on the ESP32), or None."""
    try:
        import vfs
        if vfs.rom_ioctl(1) > 0:
            dev = vfs.rom_ioctl(2, 0)
            if not isinstance(dev, int):
                return dev
    except (ImportError, AttributeError, OSError):
        pass
    return None


def rom_size(mv):
    """Bytes of the ROMFS image at the start of mv (its header's length), 0 if it holds none."""
    if bytes(mv[:3]) != _ROM_MAGIC:
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
    import hashlib
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


def _rom_copy(dev, path, n, buf):
    """Erase and write the partition's first n bytes from the file, one erase block at a time."""
    try:
        import vfs
        vfs.umount("/rom")   # nothing is imported from it yet: boot.py runs select() first
    except (ImportError, OSError):
        pass
    bs = dev.ioctl(5, 0)
    off = 0
    with open(path, "rb") as f:
        while off < n:
            if off % bs == 0:
                dev.ioctl(6, off // bs)
            k = f.readinto(buf)
            dev.writeblocks(off // bs, memoryview(buf)[:k], off % bs)
            off += k
    dev.ioctl(3, 0)


def rom_sync(slot):
    """Make the ROMFS partition hold slot's image. None: not a ROMFS slot; False: it already did;
    True: copied (and verified). OSError when the copy does not verify."""
    path = "%s/%s/%s" % (DIR, slot, ROM_IMG)
    try:
        os.stat(path)
    except OSError:
        return None
    dev = rom_dev()
    if dev is None:
        raise OSError("slot %s is a ROMFS image and this board has no ROMFS partition" % slot)
    import hashlib
    buf = bytearray(1024)
    want, n = _file_sha(path, buf)
    mv = memoryview(dev)
    if hashlib.sha256(mv[:n]).digest() == want:
        return False
    print("ota: copying slot %s into the ROMFS partition (%d bytes)" % (slot, n))
    t = _ms()
    _rom_copy(dev, path, n, buf)
    if hashlib.sha256(mv[:n]).digest() != want:
        raise OSError("the ROMFS partition does not hold slot %s after the copy" % slot)
    try:  # mounted again as at start-up (it may have held no image then)
        import vfs
        vfs.mount(vfs.VfsRom(dev), "/rom")
        if "/rom" not in sys.path:
            sys.path.extend(("/rom", "/rom/lib"))
    except (ImportError, AttributeError):
        pass
    print("ota: ROMFS partition holds slot %s (copied in %d ms)" % (slot, (_ms() - t) % (1 << 30)))
    return True


def keep_rom(slot, version):
    """The image in the ROMFS partition (deployed over USB) saved as slot, before the first ROMFS
    update overwrites it, so a rollback can copy it back. Through 1 KB of RAM (not straight from
    the mapped flash to the filesystem). True if the partition held an image."""
    dev = rom_dev()
    mv = memoryview(dev) if dev is not None else b""
    n = rom_size(mv)
    if not n:
        return False
    d = "%s/%s" % (DIR, slot)
    os.mkdir(d)
    buf = bytearray(1024)
    with open(d + "/" + ROM_IMG + ".part", "wb") as f:
        for off in range(0, n, len(buf)):
            k = min(len(buf), n - off)
            buf[:k] = mv[off:off + k]
            f.write(memoryview(buf)[:k])
    os.rename(d + "/" + ROM_IMG + ".part", d + "/" + ROM_IMG)
    with open(d + "/.manifest", "w") as f:
        f.write(json.dumps({"kind": "romfs", "version": version, "size": n, "deployed": True}))
    return True


def _rollback(st, reason):
    p = st.get("pending") or {}
    st["result"] = {"job": p.get("job"), "status": "FAILED", "reason": reason[:200],
                    "version": p.get("version")}
    if not p.get("part"):  # an image is rolled back by the bootloader, not by the app slots
        st["active"] = st.get("previous")
        st["previous"] = None
    st["pending"] = None
    st["seq"] = st.get("prev_seq", 0)
    print("ota: rolled back: %s" % reason)
    return st


def _image_rolled_back(st):
    import esp32
    running = esp32.Partition(esp32.Partition.RUNNING).info()[4]
    if running != st["pending"]["part"]:
        save(_rollback(st, "the bootloader went back to %s: image not confirmed before a reset" % running))
        return True
    return False


def _arm_watchdog(trial_s):
    """A version on trial that hangs before its app starts the watchdog still gets reset (and its
    boot counted). The app's own machine.WDT() later takes the watchdog over with its timeout."""
    try:
        import machine
        machine.WDT(timeout=min(60, trial_s) * 1000)
    except (ImportError, AttributeError, ValueError):
        pass


def select():
    """At boot: count a pending slot's try (rolling back after MAX_TRIES), make the ROMFS
    partition hold a ROMFS slot's image, or put a file slot first on sys.path. Returns the active
    slot or None (factory)."""
    st = load()
    if st is None:
        return None
    p = st.get("pending")
    if p and p.get("part"):  # a MicroPython image on trial: the bootloader decides, we observe
        _image_rolled_back(st)
        p = None
    if p:
        p["tries"] = p.get("tries", 0) + 1
        if p["tries"] > MAX_TRIES:
            _rollback(st, "not confirmed after %d boots" % MAX_TRIES)
        save(st)
    slot = _usable(st)
    if st.get("pending"):  # after the copy: erasing flash can take seconds on a board
        _arm_watchdog(st["pending"].get("trial_s", TRIAL_S))
    if slot:
        print("ota: running slot %s%s" % (slot, " (pending)" if st.get("pending") else ""))
    return slot


def _usable(st):
    """The active slot made ready to run (rolled back if it cannot be): its name or None."""
    for _ in range(2):
        slot = st.get("active")
        if not slot:
            return None
        if not slot_ok(slot):
            if not st.get("pending"):
                st["active"] = None
                save(st)
                return None
            save(_rollback(st, "slot %s is incomplete" % slot))
            continue
        try:
            if rom_sync(slot) is None:
                sys.path.insert(0, "%s/%s" % (DIR, slot))
            return slot
        except OSError as e:
            if not st.get("pending"):
                raise
            save(_rollback(st, str(e)))
    return None


def switch(slot, job, version, seq, trial_s=TRIAL_S, previous=None):
    """The commit point of an update: the staged slot becomes active, on trial. One rename.
    previous: the slot a rollback returns to (default: the active one; keep_rom's slot)."""
    st = load() or {}
    st["previous"] = previous or st.get("active")
    st["prev_seq"] = st.get("seq", 0)
    st["active"] = slot
    st["pending"] = {"job": job, "version": version, "tries": 0, "trial_s": trial_s}
    st["result"] = None
    st["seq"] = seq
    save(st)


def switch_image(part, job, version, seq, trial_s=TRIAL_S):
    """After set_boot(): remember the image on trial (the app slot stays as it is)."""
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    st = load() or {}
    st["prev_seq"] = st.get("seq", 0)
    st["pending"] = {"job": job, "version": version, "tries": 0, "part": part, "trial_s": trial_s}
    st["result"] = None
    st["seq"] = seq
    save(st)


def confirm():
    """The running app connected and reported: keep the pending slot. Returns the job to report
    SUCCEEDED for, or None if nothing was on trial."""
    st = load()
    if not st or not st.get("pending"):
        return None
    p = st["pending"]
    if p.get("part"):
        if _image_rolled_back(st):
            return st["result"]["job"]  # reported FAILED
        import esp32
        esp32.Partition.mark_app_valid_cancel_rollback()
    st["pending"] = None
    st["result"] = {"job": p.get("job"), "status": "SUCCEEDED", "reason": "", "version": p.get("version")}
    save(st)
    return p.get("job")


def fail(reason):
    """Roll a pending slot back now (it crashed or did not confirm in time). True if it did."""
    st = load()
    if not st or not st.get("pending"):
        return False
    save(_rollback(st, reason))
    return True


def crashed(exc):
    """main.py: the app raised. A slot on trial is rolled back and the board restarts."""
    if fail("the app raised at start: %r" % (exc,)):
        import machine
        machine.reset()


def clear_result(job):
    st = load()
    if st and st.get("result") and st["result"].get("job") == job:
        st["result"] = None
        save(st)
