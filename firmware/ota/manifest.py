# A job's signed manifest, checked before anything is written. The job document stays small (the
# board parses it whole): {"operation": "edgeshadow-ota", "streamId": "...", "fileId": 0,
#   "manifestFileId": 1, "signature": "<hex r||s, ECDSA P-256 over SHA-256 of the manifest bytes>"}
# and the manifest itself (JSON, the signed bytes) is file manifestFileId of the stream:
# The host lays an app manifest out one file per line (the header's fields, then "files":[ and one
# entry per line), so the board reads it from flash entry by entry (files()) instead of whole.
# manifest: {"kind": "app", "version": "0.2.0", "seq": 1764576000, "mpy_arch": null | "xtensawin",
#            "size": total, "files": [{"path": "app.py", "offset": 0, "size": n, "sha256": hex}]}
#        or {"kind": "image", "version": "1.24.1", "seq": ..., "chip": "esp32", "size": n, "sha256": hex}
#        or {"kind": "romfs", ... as "app", "files": [{"path": "romfs.img", ...}]}: the app as one
#           ROMFS image, for boards with a ROMFS partition (run in place from it: otaboot_rom.sync)
import binascii
import hashlib
import json

from ota import OtaError

PUBKEY = "/certs/ota.pub"           # 65 bytes, uncompressed P-256 point, written by `inject`
OPERATION = "edgeshadow-ota"
# Never replaced by an update: the slot pointer and entry points, the device's own data.
_PROTECTED = ("boot.py", "main.py", "otaboot.py", "otaboot.mpy", "otaboot_rom.py", "otaboot_rom.mpy",
              "config.json", "board.json")
_PROTECTED_DIRS = ("certs/", "spool/", "update/", "lib/")


def _reject(reason):
    raise OtaError("REJECTED", reason)


def read_pubkey(path=PUBKEY):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        _reject("no OTA public key on the board (%s): run `edgeshadow inject --ota-key`" % path)


MAX_BYTES = 16384    # a manifest larger than this is refused before it is fetched


def check_document(doc):
    """The job document's own fields (before anything is fetched)."""
    if not isinstance(doc, dict) or doc.get("operation") != OPERATION:
        _reject("not an edgeshadow update (operation %r)" % (doc.get("operation") if isinstance(doc, dict) else None))
    sig = doc.get("signature")
    if not isinstance(sig, str) or len(sig) != 128 or not isinstance(doc.get("streamId"), str):
        _reject("the job document lacks a streamId or a 64-byte hex signature")


def verify(doc, digest, pubkey):
    """OtaError unless doc's signature signs digest (SHA-256 of the manifest's bytes, hashed as
    they were fetched: the manifest itself is never held whole for this)."""
    check_document(doc)
    try:
        sig = binascii.unhexlify(doc["signature"])
    except ValueError:
        _reject("signature: not hex")
    from ota import ecdsa
    ok = ecdsa.verify(pubkey, digest, sig)
    del ecdsa
    if not ok:
        _reject("manifest signature does not verify with the board's OTA key")


def check(doc, text, pubkey, board_arch=None, running_seq=0, board_chip=None):
    """The manifest dict if text (bytes in RAM) is signed by doc's signature and well formed."""
    verify(doc, hashlib.sha256(text).digest(), pubkey)
    return parse(text, board_arch, running_seq, board_chip)


def parse(text, board_arch=None, running_seq=0, board_chip=None):
    """The manifest's fields checked (after its signature was), from its text in RAM."""
    try:
        m = json.loads(text)
    except ValueError:
        _reject("manifest: not JSON")
    _check_head(m, board_arch, running_seq, board_chip)
    if m["kind"] != "image":
        _check_files(m, m["files"] if isinstance(m.get("files"), list) else ())
    return m


_FILES = b',"files":['  # how the host's first line ends: one file per line follows


def head(path):
    """The manifest's fields but its files, from the file at path: read one line at a time, as
    the host lays it out (the header, then one file per line); a manifest in another layout is
    read whole (then its files are in it)."""
    with open(path, "rb") as f:
        line = f.readline().rstrip()
    try:
        return json.loads(line[:-len(_FILES)] + b"}" if line.endswith(_FILES) else line)
    except ValueError:
        _reject("manifest: not JSON")


def files(path, m):
    """The manifest's file entries one at a time: from m if it holds them, else from path."""
    if "files" in m:
        yield from m["files"] if isinstance(m["files"], list) else ()
        return
    with open(path, "rb") as f:
        f.readline()
        while True:
            line = f.readline().rstrip()
            if not line:
                return
            last = line.endswith(b"]}")
            try:
                yield json.loads(line[:-2] if last else line.rstrip(b","))
            except ValueError:
                _reject("manifest.files: an entry is not JSON")
            if last:
                return


def parse_file(path, board_arch=None, running_seq=0, board_chip=None):
    """The manifest's fields checked (after its signature was), read from flash entry by entry:
    the header dict, without its files (files(path, m) gives them again)."""
    m = head(path)
    _check_head(m, board_arch, running_seq, board_chip)
    if m["kind"] != "image":
        _check_files(m, files(path, m))
    return m


def _check_head(m, board_arch, running_seq, board_chip):
    if not isinstance(m, dict) or m.get("kind") not in ("app", "image", "romfs"):
        _reject("manifest.kind: must be \"app\", \"romfs\" or \"image\"")
    if not isinstance(m.get("version"), str) or not m["version"]:
        _reject("manifest.version: must be a non-empty string")
    seq = m.get("seq")
    if not isinstance(seq, int) or seq < running_seq:
        _reject("manifest.seq %r is older than the running firmware's %d (replayed or downgrade)" % (seq, running_seq))
    t = m.get("trial_s", 300)
    if not isinstance(t, int) or not 3 <= t <= 3600:
        _reject("manifest.trial_s: must be 3 to 3600 seconds")
    if m["kind"] == "image":
        if m.get("chip") != board_chip:
            _reject("manifest.chip: the image is for %s, this board is %s" % (m.get("chip"), board_chip))
        h = m.get("sha256")
        if not isinstance(m.get("size"), int) or m["size"] < 24 or not isinstance(h, str) or len(h) != 64:
            _reject("manifest: an image needs size (>= 24) and sha256 (64 hex digits)")
        return
    arch = m.get("mpy_arch")
    if arch is not None and arch != board_arch:
        _reject("manifest.mpy_arch %s does not match this board's %s" % (arch, board_arch))


def _check_files(m, entries):
    off = i = 0
    for i, f in enumerate(entries, 1):
        p = f.get("path") if isinstance(f, dict) else None
        if (not isinstance(p, str) or not p or p[0] == "/" or ".." in p.split("/")
                or p in _PROTECTED or any(p.startswith(d) for d in _PROTECTED_DIRS)):
            _reject("manifest.files[%d].path: %r may not be written by an update" % (i - 1, p))
        if m["kind"] == "romfs" and (i > 1 or p != "romfs.img"):
            _reject("manifest.files: a romfs update is one file, romfs.img")
        h = f.get("sha256")
        if f.get("offset") != off or not isinstance(f.get("size"), int) or f["size"] < 0:
            _reject("manifest.files[%d]: offset/size do not follow the previous file" % (i - 1))
        if not isinstance(h, str) or len(h) != 64:
            _reject("manifest.files[%d].sha256: must be 64 hex digits" % (i - 1))
        off += f["size"]
    if not i:
        _reject("manifest.files: must be a non-empty list")
    if m.get("size") != off:
        _reject("manifest.size %r is not the sum of the file sizes (%d)" % (m.get("size"), off))
