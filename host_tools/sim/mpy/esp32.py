# Stand-in for the ESP32 `esp32` module on the virtual board.
try:
    import simhw
except ImportError as e:
    if "simhw" not in str(e):
        raise
    simhw = None

HEAP_DATA = 4
HEAP_EXEC = 1


_ERASED = b"\xff" * 256


def mcu_temperature():
    if simhw is not None and hasattr(simhw, "mcu_temperature"):
        return simhw.mcu_temperature()
    return 45


def raw_temperature():
    return int(mcu_temperature() * 9 / 5 + 32)


def idf_heap_info(capabilities):
    return [(113792, 101000, 99000, 98000)]


# -- Partition: the flash's app partitions and the bootloader's OTA state machine ----------------
# A board with OTA partitions (VirtualBoard(ota_partitions=True)) has sim/partitions.json
# {"ota_0": size, "ota_1": size}, a file per partition (sim/ota_0.bin, sparse) and sim/otadata.bin,
# two 256-byte records (CRC-checked, the newer valid one wins, the older one is overwritten: as
# ESP-IDF's two otadata sectors, a power cut mid-write leaves the previous record). The files are
# opened here, at import, before the bootstrap mounts the board's flash at / (host paths are gone
# after that). On each chip boot (the supervisor counts hard resets in sim/chip_boots) the
# bootloader's rule runs, as with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: a partition set_boot() chose
# ("new") boots as "pending_verify"; one still pending_verify at the next boot is "aborted" and the
# previous valid partition boots instead. Boards without OTA partitions run "factory".
import binascii as _binascii
import json as _json

import _simenv

_RECORD = 256
_BLOCK = 4096
_parts = {}
_files = {}
_ota = None


def _load_table():
    global _ota
    try:
        table = _json.loads(_simenv.read_text("partitions.json") or "null")
    except ValueError:
        table = None
    if not table:
        return
    addr = 0x10000
    for label in sorted(table):
        _parts[label] = (addr, table[label])
        addr += table[label]
        _files[label] = open(_simenv.SIM_DIR + "/" + label + ".bin", "r+b")
    _ota = open(_simenv.SIM_DIR + "/otadata.bin", "r+b")


def _read_otadata():
    best = None
    for i in (0, 1):
        _ota.seek(i * _RECORD)
        raw = _ota.read(_RECORD)
        try:
            crc, body = raw[:8].decode(), raw[8:].rstrip(b" \x00")
            if int(crc, 16) != _binascii.crc32(body) & 0xFFFFFFFF:
                continue
            rec = _json.loads(body)
        except (ValueError, UnicodeError):
            continue
        if best is None or rec["seq"] > best[1]["seq"]:
            best = (i, rec)
    return best or (1, {"seq": 0, "boot": "ota_0", "states": {"ota_0": "valid"}, "chip_boots": 0,
                        "running": "ota_0"})


def _write_otadata(rec):
    slot = 1 - _state[0]
    rec["seq"] += 1
    body = _json.dumps(rec).encode()
    data = b"%08x" % (_binascii.crc32(body) & 0xFFFFFFFF) + body
    _ota.seek(slot * _RECORD)
    _ota.write(data + b" " * (_RECORD - len(data)))
    _ota.flush()
    _state[0], _state[1] = slot, rec


def _bootloader():
    rec = _state[1]
    boots = int(_simenv.read_text("chip_boots", "0") or 0)
    if boots <= rec.get("chip_boots", 0):
        return  # a soft reboot: the bootloader did not run
    rec["chip_boots"] = boots
    states = rec["states"]
    b = rec["boot"]
    if states.get(b) == "new":
        states[b] = "pending_verify"
    elif states.get(b) == "pending_verify":  # reset before the app confirmed itself: roll back
        states[b] = "aborted"
        for other in sorted(_parts):
            if other != b and states.get(other) == "valid":
                b = rec["boot"] = other
                break
    rec["running"] = b
    _write_otadata(rec)


_state = [1, None]
_load_table()
if _ota is not None:
    _state[0], _state[1] = _read_otadata()
    _bootloader()


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_BLOCK):
        if id == Partition.RUNNING:
            id = _state[1]["running"] if _ota is not None else "factory"
        elif id == Partition.BOOT:
            id = _state[1]["boot"] if _ota is not None else "factory"
        if id != "factory" and id not in _parts:
            raise ValueError("partition not found")
        self.label = id
        self.block_size = block_size

    @classmethod
    def find(cls, type=TYPE_APP, subtype=0xFF, label=None):
        labels = sorted(_parts) if _ota is not None else ["factory"]
        return [cls(x) for x in labels if label is None or x == label] if type == cls.TYPE_APP else []

    def info(self):
        if self.label == "factory":
            return (0, 0, 0x10000, 0x1F0000, "factory", False)
        addr, size = _parts[self.label]
        return (0, 0x10 + int(self.label[-1]), addr, size, self.label, False)

    def get_next_update(self):
        if _ota is None or self.label == "factory":
            raise OSError(2)  # ENOENT, as on a board without OTA partitions
        others = [x for x in sorted(_parts) if x != self.label]
        return Partition(others[0])

    def ioctl(self, op, arg):
        if op == 4:
            return self.info()[3] // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:  # erase a block (256 B at a time: a C module on a board, no GC heap)
            f = _files[self.label]
            f.seek(arg * self.block_size)
            for _ in range(self.block_size // 256):
                f.write(_ERASED)
            return 0
        return None

    def readblocks(self, block_num, buf, offset=0):
        f = _files[self.label]
        f.seek(block_num * self.block_size + offset)
        n = f.readinto(buf)
        for i in range(n or 0, len(buf)):
            buf[i] = 0xFF

    def writeblocks(self, block_num, buf, offset=None):
        f = _files[self.label]
        if offset is None:  # the whole block: erase, then write (as the ESP32 port does)
            self.ioctl(6, block_num)
            offset = 0
        f.seek(block_num * self.block_size + offset)
        f.write(buf)
        f.flush()

    def set_boot(self):
        rec = _state[1]
        rec["boot"] = self.label
        rec["states"][self.label] = "new"
        _write_otadata(rec)

    @staticmethod
    def mark_app_valid_cancel_rollback():
        if _ota is None:
            return
        rec = _state[1]
        if rec["states"].get(rec["running"]) != "valid":
            rec["states"][rec["running"]] = "valid"
            _write_otadata(rec)

    def __repr__(self):
        return "<Partition type=0, label=%s>" % self.label
