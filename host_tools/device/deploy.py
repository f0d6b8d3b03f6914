"""Deploy the firmware to a board over one connection, sending only what changed.

What deploy manages on the board: the root's `*.py` / `*.mpy` files and every top-level folder the
firmware has (`/edge`, `/drivers`, `/net`). There it sends files whose SHA-256 differs from the
board's, and removes files (and folders) the firmware no longer has, including a whole top-level
folder an earlier deploy wrote (listed in `/.edgeshadow-deploy.json`, which deploy keeps). It never touches
`/certs`, `/config.json`, `/spool` or anything else; `/config.json` and `/board.json` are written
only when asked for (--config, --board) and only when their content changed, atomically.

The config (--config) passes the one validator (board_check) and must be for the board the board
says it is (its /board.json) before anything is written. One round trip hashes every file deploy
manages (a small script run with exec on the board), each changed file is written through
BoardLink.write_file_atomic (temp name, SHA-256 read-back, rename), then the board soft-resets:
the banner `edgeshadow firmware v<version> thing=<thing>` must name the version just sent, and the
application must announce `edgeshadow: running ... config=<sha>` with the config deploy checked
(else deploy fails with the board's own reason, e.g. its config error).

With mpy=True every module except main.py and boot.py is compiled by mpy-cross for the board's
architecture (board definition `mpy_arch`) and sent as .mpy; the .py twins on the board are then
files the firmware no longer has, so they are removed (MicroPython imports .py before .mpy).
"""
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import FIRMWARE_DIR
from host_tools.device.firmware_files import (  # noqa: F401 (re-exported)
    HOST_ONLY, KEEP_SOURCE, PROTECTED, _under_protected, firmware_version, local_files, plan)
from host_tools.device.board_check import load_config_file, validate_config
from host_tools.device.boards import load_board
from host_tools.device import romfs as romfs_lib
from host_tools.device.link import NoAnswer
from host_tools.errors import EdgeshadowError

BANNER = re.compile(r"edgeshadow firmware v(\S+) thing=(\S+)")

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
    app: dict = field(default_factory=dict)   # what the application announced: version, thing, config
    wire_bytes: int = 0     # all bytes written to the board: code, base64 data, raw-REPL framing
    romfs: dict = field(default_factory=dict)  # the ROMFS image: bytes, sha256, written (False: unchanged)

    @property
    def bytes_sent(self):
        return sum(n for _, n in self.sent)


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
        except NoAnswer:
            raise  # silence is not a lost Ctrl-C: say so now, not after three more tries
        except EdgeshadowError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


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


def board_json(board):
    return (json.dumps(board, indent=1) + "\n").encode()   # the format VirtualBoard and inject use


def board_on_device(link, remote=None):
    """The name in the board's own /board.json, or None (no file, or not one naming a board).
    remote: the board's hashes, when known (no round trip when it has no /board.json)."""
    if remote is not None and "/board.json" not in remote:
        return None
    try:
        name = json.loads(link.read_file("/board.json")).get("name")
    except EdgeshadowError as e:
        if "no such file" in str(e):
            return None
        raise
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def choose_board(given, cfg, config_path, on_device, port):
    """(board dict or None, write it as /board.json?) for a deploy; refuses, before anything is
    written, a config for another board than the one the board says it is. given: --board (a
    dict), the user's word for what the hardware is; cfg's "board": what the config was made for;
    on_device: the name in the board's own /board.json."""
    named = cfg.get("board") if cfg else None
    if given is not None:
        return given, True
    if named and on_device and named != on_device:
        raise EdgeshadowError(
            f"{config_path}: the config is for board {named!r}, but the board on {port} is a "
            f"{on_device!r} (its /board.json); nothing was written",
            hint=f"use a config made for {on_device}, or pass --board {named} if this board "
                 f"really is a {named}")
    if named:
        return load_board(named), True
    if on_device:
        try:
            board = load_board(on_device)
        except EdgeshadowError:
            return None, False   # a board this host does not know: its own definition stays
        if cfg is not None:
            validate_config(cfg, board, where=str(config_path))
        return board, False
    return None, False


def deploy(link, firmware_dir=FIRMWARE_DIR, *, config=None, mpy=False, board=None, on_event=None,
           boot_timeout=20, start_timeout=30, romfs=None):
    """Deploy `firmware_dir` through `link` (an open BoardLink). Returns a DeployReport once the
    application runs the deployed version with the expected config (else EdgeshadowError naming
    the board's own reason).

    config: path of a device config to upload as /config.json. board: a board name or dict,
    written as /board.json; it also gives the mpy-cross architecture (needed for mpy=True) and
    the config is checked against it. on_event(kind, path, nbytes) reports progress: "plan"
    (nbytes = files to send), "sent", "removed", "reset", "start".
    boot_timeout / start_timeout: seconds for the firmware banner after the soft reset, then for
    the application's "running" (or its error).
    """
    t0, out0 = time.monotonic(), getattr(link, "bytes_out", 0)
    emit = on_event or (lambda *a: None)
    given = load_board(board) if isinstance(board, str) else board
    config_bytes, cfg, _ = load_device_config(config, given) if config else (None, None, None)
    top_dirs = {p.name for p in Path(firmware_dir).iterdir() if p.is_dir()
                and not p.name.startswith(".") and p.name != "__pycache__"}
    remote, remote_dirs, deployed_dirs = _first_contact(link, top_dirs)
    board, write_board = choose_board(given, cfg, config, board_on_device(link, remote), link.port)
    rom_size = romfs_lib.partition_for_deploy(link, romfs)
    if (mpy or rom_size) and board is None:
        raise EdgeshadowError(f"{'--mpy' if mpy else 'a ROMFS deploy'} needs the board's architecture: pass "
                              "--board NAME (the board has no /board.json naming a known board)")
    if cfg is not None:
        check_thing_against_certificate(link, cfg, config)
    local, local_dirs, deployed_dirs, rom = romfs_lib.layout(firmware_dir, board, mpy, rom_size, top_dirs, deployed_dirs)
    extra = {"/config.json": config_bytes} if config_bytes is not None else {}
    if write_board:
        extra["/board.json"] = board_json(board)
    deployed_dirs = {d for d in deployed_dirs if isinstance(d, str) and d and "/" not in d
                     and not _under_protected("/" + d)}
    send, skip, remove, remove_dirs = plan(local, local_dirs, remote, remote_dirs, deployed_dirs)
    for path, data in extra.items():
        (skip if remote.get(path) == hashlib.sha256(data).hexdigest() else send).append(path)
    report = DeployReport(skipped=skip)
    report.romfs = romfs_lib.put_image(link, rom, rom_size, emit) if rom is not None else {}
    _apply(link, {**local, **extra}, send, remove + [d + "/" for d in remove_dirs], report, emit)
    if deployed_dirs != top_dirs:
        link.write_file_atomic(MANIFEST, (json.dumps({"dirs": sorted(top_dirs)}) + "\n").encode())
    if "removed" in link.exec(_DROP_OTA, timeout=30):
        emit("removed", "/update/", 0)
        report.removed.append("/update/")
    config_sha = hashlib.sha256(config_bytes).hexdigest() if config_bytes else remote.get("/config.json")
    _start_and_confirm(link, report, firmware_version(firmware_dir), cfg, config_sha, emit,
                       boot_timeout, start_timeout)
    report.seconds = time.monotonic() - t0
    report.wire_bytes = getattr(link, "bytes_out", 0) - out0
    return report


def _apply(link, everything, send, remove, report, emit):
    """Write what changed (atomically, parent folders made) and remove what the firmware no
    longer has (folders end with "/", deepest first)."""
    emit("plan", "", len(send))
    for path in send:
        data = everything[path]
        link.write_file_atomic(path, data)
        report.sent.append((path, len(data)))
        emit("sent", path, len(data))
    for path in remove:
        link.remove(path.rstrip("/"))
        report.removed.append(path)
        emit("removed", path, 0)


def _start_and_confirm(link, report, expected, cfg, config_sha, emit, boot_timeout, start_timeout):
    """Soft-reset; the banner must name the deployed version, and the application must announce
    "running" with the config just checked (its SHA-256): else the board's own reason."""
    emit("reset", "", 0)
    try:
        boot = link.soft_reset(timeout=boot_timeout)
    except EdgeshadowError as e:
        raise EdgeshadowError(f"the firmware did not boot after the deploy: {e}")
    m = BANNER.search(boot or "")
    report.banner, report.version, report.thing = m.group(0), m.group(1), m.group(2)
    if report.version != expected:
        raise EdgeshadowError(f"the board booted firmware v{report.version}, expected v{expected} "
                              f"which was just deployed")
    emit("start", "", 0)
    app = link.wait_started(timeout=start_timeout)
    if cfg is not None and app["thing"] != cfg["thing"]:
        raise EdgeshadowError(f"the board's application runs as thing={app['thing']}, expected "
                              f"{cfg['thing']} from the config just uploaded")
    if config_sha and not config_sha.startswith(app["config"]):
        raise EdgeshadowError(f"the board's application runs with config {app['config']}, not the "
                              f"one deploy checked ({config_sha[:12]}); was it changed meanwhile?")
    report.app = app
