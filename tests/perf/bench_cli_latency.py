"""Time from starting `edgeshadow ...` to its first line of output (stdout or stderr), per command.

What a user waits before the tool says anything: the imports (cli.py imports only the command
run; `edgeshadow --help` imports every command module), then the command's own first line. Each
figure is the median of RUNS runs of the installed console script (.venv/bin/edgeshadow).

- `<cmd> --help` for every command, `--help` and `--version`;
- commands that do something here without a board or broker (boards, replay, cloud plan, the
  dashboard) and errors that should come at once (no such port, no broker, no database);
- commands pointed at a port where nothing answers (a pseudo-terminal nobody reads): issue 12
  asks that a long wait says what it waits for within 2 s. The command is stopped after its
  first line (or after SILENT_LIMIT s, printed as that limit: "no line within").
"""
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import cli  # noqa: E402

EDGESHADOW = ROOT / ".venv" / "bin" / "edgeshadow"
RUNS = 3
SILENT_LIMIT = 40.0
CONFIG = ROOT / "host_tools" / "data" / "configs" / "grid-sensor.json"
SAMPLE = ROOT / "host_tools" / "data" / "samples" / "grid-21x60.jsonl"
NO_PORT = "/dev/ttyEDGESHADOW-NONE0"


def first_line(argv, limit=SILENT_LIMIT):
    """(seconds to the first complete line on stdout or stderr or None, the line, CPU seconds of
    the whole process: user + system)."""
    cmd = [str(EDGESHADOW)] if EDGESHADOW.exists() else [sys.executable, "-m", "host_tools"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + [str(a) for a in argv], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    sel = selectors.DefaultSelector()
    bufs = {}
    for f in (proc.stdout, proc.stderr):
        sel.register(f, selectors.EVENT_READ)
        bufs[f] = b""
    found = None
    try:
        while found is None and sel.get_map():
            left = limit - (time.monotonic() - t0)
            if left <= 0:
                break
            for key, _ in sel.select(timeout=left):
                data = os.read(key.fileobj.fileno(), 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                bufs[key.fileobj] += data
                if b"\n" in bufs[key.fileobj]:
                    found = (time.monotonic() - t0, bufs[key.fileobj].split(b"\n", 1)[0].decode(errors="replace"))
                    break
        if found is None or not argv[-1] == "--help":
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: the command cleans up
    finally:
        cpu = _reap(proc)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return (found or (None, "")) + (cpu,)


def _reap(proc, timeout=15):
    """Wait for proc (SIGKILL after `timeout`) and return its CPU seconds (os.wait4's rusage)."""
    end = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > end:
            os.killpg(proc.pid, signal.SIGKILL)
            end = float("inf")
        time.sleep(0.02)


def report(label, argv, runs=RUNS, limit=SILENT_LIMIT, cpu=False):
    """Print the median time to the first line (and, with cpu, the process's CPU time: what the
    imports cost whatever the machine's load)."""
    times, cpus, line = [], [], ""
    for _ in range(runs):
        t, line, c = first_line(argv, limit)
        times.append(limit if t is None else t)
        cpus.append(c)
        if t is None:
            break  # silent: once is enough
    note = "no line within" if t is None else line[:70].replace(":", ";")
    print(f"first line {label}: {statistics.median(times):.2f} s")
    if cpu:
        print(f"cpu {label}: {statistics.median(cpus):.2f} s")
    print(f"   ({note})", flush=True)


def main():
    print(f"load average: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    for argv in (["--version"], ["--help"]):
        report(" ".join(argv), argv, cpu=True)
    for name in cli.command_names():
        report(f"{name} --help", [name, "--help"], cpu=True)
    report("boards", ["boards"])
    report("replay (bundled sample)", ["replay", "--config", CONFIG, "--input", SAMPLE])
    report("cloud plan", ["cloud", "plan"])
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        nowhere = Path(tmp) / "none"  # no broker, no database, no certificates here
        for label, argv in (("certs check (no certificates)", ["certs", "check", "grid-001", "--certs-dir", nowhere]),
                            ("history (no database)", ["history", "grid-001", "--db", nowhere / "h.sqlite"]),
                            ("shadow get (no broker)", ["shadow", "get", "grid-001", "--workdir", nowhere]),
                            ("monitor --once (no broker)", ["monitor", "--once", "--broker-state", nowhere / "b.json"]),
                            ("historian (no broker)", ["historian", "--broker-state", nowhere / "b.json"]),
                            ("ota status (no broker)", ["ota", "status", "--broker-state", nowhere / "b.json"]),
                            ("dashboard (empty database)", ["dashboard", "--db", Path(tmp) / "d.sqlite"])):
            report(label, argv)
    for name, extra in (("deploy", []), ("logs", []), ("bench", []), ("inject", ["--thing", "grid-001"]),
                        ("calibrate", ["--metric", "voltage", "--ref", "1", "2"])):
        report(f"{name} (no such port)", [name, "--port", NO_PORT, *extra])
    master, slave = os.openpty()  # a port where nothing answers
    silent = os.ttyname(slave)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
            image = Path(tmp) / "fw.bin"
            from host_tools.sim.rom import build_image
            image.write_bytes(build_image("esp32", bytes(4096), "4MB"))
            for name, extra in (("deploy", []), ("logs", []), ("bench", []),
                                ("calibrate", ["--metric", "voltage", "--ref", "1", "2"]),
                                ("flash", ["--board", "esp32-devkitc", "--firmware", image])):
                report(f"{name} (port where nothing answers)", [name, "--port", silent, *extra], runs=1)
    finally:
        os.close(master)
        os.close(slave)
    return 0


if __name__ == "__main__":
    sys.exit(main())
