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
# need ~112-160 KB), so at boot select() makes the partition hold the active slot's image
# (otaboot_rom.sync: copied when its SHA-256 differs, block by block through the partition object
# the ESP32 port gives, verified, mounted again). A cut copy is redone at the next boot; a rollback
# copies the previous slot's image back. The image deployed over USB is saved as the previous slot
# at the first boot of the first ROMFS update, before the copy overwrites it.
#    "rom": slot or null           the slot the ROMFS partition was last verified to hold
#    "keep": {"slot", "version"}   the slot to save the USB-deployed ROMFS image as, at the next boot
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


_DEV = None  # the ROMFS partition for otaboot_rom (None: vfs.rom_ioctl(2, 0)); tests put a stand-in here


def _rom_sync(st, slot):
    """A ROMFS slot (one file, romfs.img): the partition made to hold its image by otaboot_rom
    (root-only too, in RAM only then). None for a file slot; else whether it was copied.
    st["rom"]: the slot the partition was last verified to hold (the check is skipped then)."""
    try:
        os.stat("%s/%s/romfs.img" % (DIR, slot))
    except OSError:
        return None
    if st.get("rom") == slot:
        return False
    import otaboot_rom
    sys.modules.pop("otaboot_rom", None)
    return otaboot_rom.boot(st, slot, DIR, save, slot_ok, _DEV)


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
            if _rom_sync(st, slot) is None:
                sys.path.insert(0, "%s/%s" % (DIR, slot))
            return slot
        except OSError as e:
            if not st.get("pending"):
                raise
            save(_rollback(st, str(e)))
    return None


def switch(slot, job, version, seq, trial_s=TRIAL_S, keep=None):
    """The commit point of an update: the staged slot becomes active, on trial. One rename.
    keep: (slot, version) to save the USB-deployed ROMFS image as at the next boot (the slot a
    rollback returns to); else the active slot is the previous one."""
    st = load() or {}
    st["previous"] = keep[0] if keep else st.get("active")
    st["keep"] = {"slot": keep[0], "version": keep[1]} if keep else None
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
