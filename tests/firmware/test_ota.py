# Over-the-air updates on the device: the P-256 signature check, the manifest's rules, the slot
# pointer's state machine (otaboot) and the stream writer. Runs on CPython and MicroPython.
import binascii
import hashlib
import json
import os

from _helpers import raises, tmpdir

import otaboot
from ota import OtaError, ecdsa, manifest
from ota import agent

# RFC 6979, appendix A.2.5: the published P-256 / SHA-256 test vector for the message "sample".
RFC_PUB = binascii.unhexlify("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
                             "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")
RFC_SIG = binascii.unhexlify("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                             "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")


def _h(b):
    return hashlib.sha256(b).digest()


def test_ecdsa_accepts_the_rfc6979_vector_and_nothing_altered():
    assert ecdsa.verify(RFC_PUB, _h(b"sample"), RFC_SIG)
    assert ecdsa.verify(b"\x04" + RFC_PUB, _h(b"sample"), RFC_SIG)
    assert not ecdsa.verify(RFC_PUB, _h(b"samplf"), RFC_SIG)
    for i in (0, 31, 32, 63):
        bad = bytearray(RFC_SIG)
        bad[i] ^= 0x01
        assert not ecdsa.verify(RFC_PUB, _h(b"sample"), bytes(bad))
    other = bytearray(RFC_PUB)
    other[5] ^= 0x01  # no longer a point on the curve
    assert not ecdsa.verify(bytes(other), _h(b"sample"), RFC_SIG)
    assert not ecdsa.verify(RFC_PUB, _h(b"sample"), bytes(64))        # r = s = 0
    assert not ecdsa.verify(RFC_PUB, _h(b"sample"), RFC_SIG[:63])     # wrong length


def _manifest(**kw):
    files = [("app.py", b"print(1)\n"), ("edge/x.py", b""), ("net/y.py", b"y = 2\n")]
    out, off = [], 0
    for p, d in files:
        out.append({"path": p, "offset": off, "size": len(d), "sha256": binascii.hexlify(_h(d)).decode()})
        off += len(d)
    m = {"kind": "app", "version": "0.2.0", "seq": 5, "mpy_arch": None, "size": off, "files": out}
    m.update(kw)
    return m, b"".join(d for _, d in files)


def _reason(m, **kw):
    e = raises(OtaError, manifest.parse, json.dumps(m), **kw)
    assert e.status == "REJECTED"
    return e.reason


def test_manifest_rules():
    m, _ = _manifest()
    assert manifest.parse(json.dumps(m))["version"] == "0.2.0"
    assert "older than the running" in _reason(m, running_seq=6)
    assert "mpy_arch" in _reason(_manifest(mpy_arch="xtensawin")[0], board_arch="x64")
    assert manifest.parse(json.dumps(_manifest(mpy_arch="x64")[0]), board_arch="x64")
    for bad in ("main.py", "boot.py", "otaboot.py", "config.json", "certs/device.der", "/app.py",
                "../app.py", "edge/../../x", "update/state.json", "spool/0"):
        m, _ = _manifest()
        m["files"][0]["path"] = bad
        assert "may not be written" in _reason(m), bad
    m, _ = _manifest()
    m["files"][1]["offset"] = 3
    assert "offset/size" in _reason(m)
    m, _ = _manifest(size=1)
    assert "not the sum" in _reason(m)
    assert "kind" in _reason(_manifest(kind="firmware")[0])
    img = {"kind": "image", "version": "1.24.1", "seq": 9, "chip": "esp32", "size": 4096, "sha256": "ab" * 32}
    assert manifest.parse(json.dumps(img), board_chip="esp32")["size"] == 4096
    assert "this board is esp32s3" in _reason(img, board_chip="esp32s3")
    img["size"] = 3
    assert "size" in _reason(img, board_chip="esp32")
    doc = {"operation": "edgeshadow-ota", "streamId": "s", "signature": "00" * 64}
    assert "signature" in raises(OtaError, manifest.check, doc, b"{}", RFC_PUB).reason
    assert "not an edgeshadow update" in raises(OtaError, manifest.check, {"operation": "x"}, b"{}", RFC_PUB).reason
    assert "streamId" in raises(OtaError, manifest.check_document, {"operation": "edgeshadow-ota",
                                                                     "signature": "00" * 64}).reason


def _slots(d):
    otaboot.DIR = d
    for s in ("a", "b"):
        os.mkdir(d + "/" + s)
        with open(d + "/%s/.manifest" % s, "w") as f:
            f.write("{}")


def test_slot_pointer_trial_confirm_and_rollback():
    import sys
    d = tmpdir()
    _slots(d)
    path = list(sys.path)
    try:
        assert otaboot.select() is None                         # no state: the factory firmware
        otaboot.switch("a", "job-1", "0.2.0", 7)
        assert otaboot.select() == "a" and sys.path[0] == d + "/a"
        st = otaboot.load()
        assert st["pending"] == {"job": "job-1", "version": "0.2.0", "tries": 1, "trial_s": 300} and st["previous"] is None
        assert otaboot.confirm() == "job-1"
        st = otaboot.load()
        assert st["pending"] is None and st["result"]["status"] == "SUCCEEDED" and st["seq"] == 7
        assert otaboot.confirm() is None                         # only once
        otaboot.clear_result("job-1")
        # the next update goes to b; it never confirms: after MAX_TRIES boots, back to a
        otaboot.switch("b", "job-2", "0.3.0", 8)
        for _ in range(otaboot.MAX_TRIES):
            assert otaboot.select() == "b"
        assert otaboot.select() == "a"
        st = otaboot.load()
        assert st["active"] == "a" and st["pending"] is None and st["seq"] == 7
        assert st["result"]["status"] == "FAILED" and "not confirmed after" in st["result"]["reason"]
        # a crash at start rolls back at once; an incomplete slot is never booted
        otaboot.switch("b", "job-3", "0.3.1", 9)
        assert otaboot.fail("the app raised at start: boom")
        assert otaboot.load()["active"] == "a" and "boom" in otaboot.load()["result"]["reason"]
        assert not otaboot.fail("again")                         # nothing on trial
        otaboot.switch("b", "job-4", "0.3.2", 9)
        os.remove(d + "/b/.manifest")
        assert otaboot.select() == "a"
        assert "incomplete" in otaboot.load()["result"]["reason"]
    finally:
        sys.path[:] = path
        otaboot.DIR = "/update"


def test_a_damaged_state_file_boots_the_factory_firmware():
    d = tmpdir()
    _slots(d)
    try:
        with open(d + "/state.json", "w") as f:
            f.write('{"active": "a", "pend')                     # torn (cannot happen with rename)
        assert otaboot.select() is None
    finally:
        otaboot.DIR = "/update"


def test_stream_writer_cuts_files_checks_sha256_and_resumes():
    m, blob = _manifest()
    d = tmpdir()
    otaboot.DIR = d
    try:
        os.mkdir(d + "/stage")
        done = []
        w = agent._Writer(m["files"], 0, done.append)
        for i in range(0, len(blob), 4):                          # blocks that straddle files
            w.feed(blob[i:i + 4])
        assert w.done and done == [1, 2, 3]
        with open(d + "/stage/net/y.py", "rb") as f:
            assert f.read() == b"y = 2\n"
        # resuming at file 2 (index 2): its bytes only
        w = agent._Writer(m["files"], 2, done.append)
        w.feed(blob[m["files"][2]["offset"]:])
        assert w.done
        # a changed byte: the file is refused and not left behind
        w = agent._Writer(m["files"], 0, done.append)
        e = raises(OtaError, w.feed, b"print(2)\n")
        assert e.status == "FAILED" and "SHA-256" in e.reason
        raises(OSError, os.stat, d + "/stage/app.py.part")
    finally:
        otaboot.DIR = "/update"


def test_manifest_read_from_flash_one_entry_at_a_time():
    # the host's layout: a header line, then one file per line (JSON all the same)
    m, _ = _manifest()
    head = json.dumps({k: v for k, v in m.items() if k != "files"})[:-1] + ',"files":['
    text = head + "\n" + ",\n".join(json.dumps(f) for f in m["files"]) + "]}"
    assert json.loads(text) == m
    d = tmpdir()
    with open(d + "/m.json", "w") as f:
        f.write(text)
    got = manifest.parse_file(d + "/m.json")
    assert "files" not in got and got["version"] == "0.2.0" and got["size"] == m["size"]
    assert list(manifest.files(d + "/m.json", got)) == m["files"]
    # a manifest on one line is read whole: its files come from the dict
    with open(d + "/m.json", "w") as f:
        f.write(json.dumps(m))
    got = manifest.parse_file(d + "/m.json")
    assert list(manifest.files(d + "/m.json", got)) == m["files"]
    # the same rules as parse(): an entry out of order is refused
    with open(d + "/m.json", "w") as f:
        f.write(text.replace('"offset": 9', '"offset": 8'))
    assert "offset/size" in raises(OtaError, manifest.parse_file, d + "/m.json").reason
    with open(d + "/m.json", "w") as f:
        f.write(head + "\n{nope]}")
    assert "not JSON" in raises(OtaError, manifest.parse_file, d + "/m.json").reason


def test_romfs_manifest_is_one_romfs_image():
    d = b"\xd2\xcd\x31\x02\x01\x00"
    f = {"path": "romfs.img", "offset": 0, "size": len(d), "sha256": binascii.hexlify(_h(d)).decode()}
    m = {"kind": "romfs", "version": "0.2.0", "seq": 5, "mpy_arch": None, "size": len(d), "files": [f]}
    assert manifest.parse(json.dumps(m))["kind"] == "romfs"
    assert "one file, romfs.img" in _reason(dict(m, files=[dict(f, path="app.py")]))
    two = [f, dict(f, offset=len(d))]
    assert "one file, romfs.img" in _reason(dict(m, files=two, size=2 * len(d)))
    assert "may not be written" in _reason(dict(m, kind="app", files=[dict(f, path="otaboot.mpy")]))


def _romfs(n, fill):
    """A ROMFS image as mpremote's writer makes it: header, length, one padding record of n bytes."""
    def uint(v):
        out = [v & 0x7F]
        v >>= 7
        while v:
            out.insert(0, 0x80 | (v & 0x7F))
            v >>= 7
        return bytes(out)
    data = uint(1) + uint(n) + bytes([fill]) * n
    length = uint(len(data))
    if (3 + len(length) + len(data)) % 2:
        length = b"\x80" + length
    return b"\xd2\xcd\x31" + length + data


class _NorPartition(bytearray):
    """The ROMFS partition as the ESP32 port gives it (vfs.rom_ioctl(2, 0)): read as a buffer,
    4 KB erase blocks (ioctl 6), writeblocks(block, buf, offset) only clears bits."""

    def ioctl(self, cmd, arg):
        if cmd == 4:
            return len(self) // 4096
        if cmd == 5:
            return 4096
        if cmd == 6:
            self[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
        return 0

    def writeblocks(self, block, buf, off):
        o = block * 4096 + off
        for i in range(len(buf)):
            self[o + i] &= buf[i]


def test_romfs_slots_are_copied_into_the_partition_at_boot_and_back_on_rollback():
    import sys
    old, new = _romfs(3000, 0x11), _romfs(6000, 0x22)              # 1 and 2 erase blocks
    import otaboot_rom
    assert otaboot_rom.rom_size(old) == len(old) and otaboot_rom.rom_size(b"\xff" * 16) == 0
    part = _NorPartition(b"\xff" * 8192)
    part[:len(old)] = old
    d = tmpdir()
    otaboot.DIR = d
    otaboot._DEV = part
    path = list(sys.path)
    try:
        os.mkdir(d + "/a")
        with open(d + "/a/romfs.img", "wb") as f:
            f.write(new)
        with open(d + "/a/.manifest", "w") as f:
            f.write("{}")
        otaboot.switch("a", "job-1", "0.2.0", 2, keep=("b", "0.1.0"))
        os.mkdir(d + "/b")                                         # a save a power cut stopped
        with open(d + "/b/romfs.img.part", "wb") as f:
            f.write(old[:100])
        assert otaboot.select() == "a" and bytes(part[:len(new)]) == new
        with open(d + "/b/romfs.img", "rb") as f:                 # the image deployed over USB,
            assert f.read() == old                                 # saved before the copy
        st = otaboot.load()
        assert st["previous"] == "b" and st["keep"] is None
        assert d + "/a" not in sys.path                            # runs from the partition, not files
        st = otaboot.load()
        assert st["rom"] == "a" and otaboot._rom_sync(st, "a") is False   # the next boot copies nothing
        st["rom"] = None                                           # a copy cut by a power cut (the
        otaboot.save(st)                                           # mark is cleared before it)...
        part.ioctl(6, 1)
        assert otaboot.select() == "a" and bytes(part[:len(new)]) == new   # ...is redone
        assert otaboot.load()["rom"] == "a"
        assert otaboot.fail("the app raised at start: boom")
        assert otaboot.select() == "b" and bytes(part[:len(old)]) == old   # rollback: copied back
        st = otaboot.load()
        assert st["active"] == "b" and st["pending"] is None and "boom" in st["result"]["reason"]
    finally:
        sys.path[:] = path
        otaboot.DIR = "/update"
        otaboot._DEV = None
        try:
            import vfs
            vfs.umount("/rom")
        except (ImportError, OSError):
            pass
