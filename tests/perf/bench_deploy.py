"""Deploy to a virtual board: time and bytes sent, first deploy vs unchanged vs one file changed.

A virtual board (real MicroPython unix port behind a pty) starts with no firmware; a copy of
firmware/ is deployed three times through one BoardLink each: everything, nothing changed, then
one module changed. "Bytes sent" is file payload; the raw REPL carries it base64-encoded inside
exec calls, so "bytes on the serial line" (counted by BoardLink: everything written to the board,
the hashing script and resets included) is about 4/3 of it plus the commands around it.
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import FIRMWARE_DIR  # noqa: E402
from host_tools.device.deploy import deploy  # noqa: E402
from host_tools.device.link import BoardLink  # noqa: E402
from host_tools.sim.board import VirtualBoard  # noqa: E402


def timed_deploy(vb, firmware, settle=True, **kw):
    since = len(vb.log())
    t0 = time.monotonic()
    with BoardLink(vb.port) as link:
        report = deploy(link, firmware, **kw)
    seconds = time.monotonic() - t0
    if settle:   # the application runs before the next deploy
        vb.wait_for_log(": thing ", start=since)
    return seconds, report


def main():
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        firmware = Path(tmp) / "firmware"
        shutil.copytree(FIRMWARE_DIR, firmware, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with VirtualBoard(Path(tmp) / "board", thing="bench-001", firmware=False) as vb:
            runs = [("first", None), ("unchanged", None), ("one_changed", "edge/status.py")]
            for label, change in runs:
                if change:
                    path = firmware / change
                    path.write_text(path.read_text() + "\n# bench change\n")
                seconds, r = timed_deploy(vb, firmware)
                print(f"deploy {label} time: {seconds:.2f} s")
                print(f"deploy {label} files sent: {len(r.sent)} files")
                print(f"deploy {label} bytes sent: {r.bytes_sent} bytes")
                print(f"deploy {label} files skipped: {len(r.skipped)} files")
                print(f"deploy {label} bytes on the serial line (host to board): {r.wire_bytes} bytes")
                print(f"deploy {label} line time at 115200 baud: {r.wire_bytes * 10 / 115200:.1f} s")
            seconds, r = timed_deploy(vb, firmware, settle=False, mpy=True, board="sim")
            print(f"deploy mpy_after_py time: {seconds:.2f} s")
            print(f"deploy mpy_after_py bytes sent: {r.bytes_sent} bytes")
            print(f"deploy mpy_after_py bytes on the serial line (host to board): {r.wire_bytes} bytes")
            print(f"deploy mpy_after_py line time at 115200 baud: {r.wire_bytes * 10 / 115200:.1f} s")
            print(f"deploy mpy_after_py files removed: {len(r.removed)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
