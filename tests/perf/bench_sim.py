"""The virtual board: how fast it comes up, resets, and takes files.

- `edgeshadow sim` start -> REPL prompt: the command is started, its printed port opened, Ctrl-C
  sent, and the clock stops at the friendly prompt `>>> `.
- VirtualBoard.start() -> ready, and -> REPL prompt.
- soft reset (Ctrl-D at the REPL) -> firmware banner, through BoardLink.
- `mpremote fs cp` of a 64 KB file (one CLI run, its ~0.3 s start-up included) and
  BoardLink.write_file_atomic of the same file (SHA-256 checked on the board).
Each figure is the median of a few runs.
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402

from host_tools.device.link import BoardLink  # noqa: E402
from host_tools.sim.board import VirtualBoard  # noqa: E402

MPREMOTE = str(ROOT / ".venv" / "bin" / "mpremote")
RUNS = 3


def prompt(port, timeout=30):
    """Interrupt whatever runs and wait for the friendly REPL prompt."""
    with serial.Serial(port, 115200, timeout=0.05) as s:
        s.write(b"\r\x03")
        buf, deadline = b"", time.monotonic() + timeout
        again = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            buf += s.read(256)
            if buf.endswith(b">>> "):
                return
            if time.monotonic() > again:  # as a user would, press Ctrl-C again
                s.write(b"\r\x03")
                again = time.monotonic() + 1.0
        raise RuntimeError(f"no REPL prompt on {port}: {buf[-200:]!r}")


def sim_command_to_prompt(tmp):
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "sim", "--devices", "1",
                             "--workdir", str(tmp)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        port = proc.stdout.readline().split()[1]
        prompt(port)
        return time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cmd = [sim_command_to_prompt(tmp / f"cmd{i}") for i in range(RUNS)]
        print(f"edgeshadow sim start to REPL prompt: {statistics.median(cmd):.2f} s")

        ready, to_prompt = [], []
        for i in range(RUNS):
            vb = VirtualBoard(tmp / f"vb{i}", thing=f"bench-{i:03d}")
            t0 = time.monotonic()
            vb.start()
            ready.append(time.monotonic() - t0)
            prompt(vb.port)
            to_prompt.append(time.monotonic() - t0)
            vb.stop()
        print(f"VirtualBoard.start() to ready: {statistics.median(ready) * 1000:.0f} ms")
        print(f"VirtualBoard.start() to REPL prompt: {statistics.median(to_prompt) * 1000:.0f} ms")

        with VirtualBoard(tmp / "files", thing="bench-files") as vb:
            vb.wait_for_log("edgeshadow firmware v")
            with BoardLink(vb.port) as link:
                resets = []
                for _ in range(RUNS):
                    t0 = time.monotonic()
                    link.soft_reset()
                    resets.append(time.monotonic() - t0)
                print(f"soft reset to firmware banner: {statistics.median(resets) * 1000:.0f} ms")
            data = os.urandom(64 * 1024)
            src = tmp / "blob.bin"
            src.write_bytes(data)
            cps = []
            for i in range(RUNS):
                t0 = time.monotonic()
                subprocess.run([MPREMOTE, "connect", vb.port, "resume", "fs", "cp", str(src),
                                f":blob{i}.bin"], check=True, capture_output=True, timeout=120)
                cps.append(time.monotonic() - t0)
                assert (vb.flash_dir / f"blob{i}.bin").read_bytes() == data
            print(f"mpremote fs cp 64 KB to the virtual board: {64 / statistics.median(cps):.0f} KB/s")
            with BoardLink(vb.port) as link:
                writes = []
                for i in range(RUNS):
                    t0 = time.monotonic()
                    link.write_file_atomic(f"/link{i}.bin", data)
                    writes.append(time.monotonic() - t0)
            print(f"BoardLink.write_file_atomic 64 KB: {64 / statistics.median(writes):.0f} KB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
