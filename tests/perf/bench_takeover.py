"""Taking over a running board: Ctrl-C at a random moment of the firmware's start, then a command.

A host tool (bench, deploy, inject, calibrate) starts by interrupting main.py and entering the raw
REPL. On the virtual board a Ctrl-C that lands while the MicroPython unix port holds its qstr lock
(inside an import or a compile) leaves that lock taken; the bootstrap then hangs on purpose before
the REPL answers, the supervisor's hang check resets the board (an interrupt-watchdog reset), and
BoardLink presses Ctrl-C again. This measures how often that happens and what it costs:

- takeovers: soft reset, wait 0 to 300 ms (the firmware is importing, starting its tasks or
  sampling), then BoardLink.exec of a small command (Ctrl-C, raw REPL, raw paste, answer);
- failed: takeovers whose command did not answer (should be 0);
- deadlock resets: "Guru Meditation" lines the board printed (absorbed by the retry);
- takeover time: median, 95th percentile and max, from the first Ctrl-C to the answer.

Then the worst case, a main.py that compiles without pause (the qstr lock is held often), with
the Ctrl-C 0 to 50 ms after its banner: the same counts.
"""
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools import DATA_DIR, FIRMWARE_DIR  # noqa: E402
from host_tools.device.link import BoardLink  # noqa: E402
from host_tools.sim import scenarios  # noqa: E402
from host_tools.sim.board import VirtualBoard  # noqa: E402

TAKEOVERS = 300
WORST_CASE_TAKEOVERS = 60
COMPILING_MAIN = ("print('edgeshadow firmware v0 thing=takeover-002')\nn = 0\nwhile True:\n    n += 1\n"
                  "    exec(compile('\\n'.join('v%d_%d = 1' % (n, i) for i in range(50)), 's', 'exec'), {})\n")


def takeovers(vb, n, max_delay_s, rnd):
    times, failed = [], 0
    with BoardLink(vb.port) as link:
        for _ in range(n):
            link.soft_reset()
            time.sleep(rnd.random() * max_delay_s)
            t0 = time.monotonic()
            try:
                assert link.exec("print(6 * 7)").strip() == "42"
                times.append(time.monotonic() - t0)
            except Exception as e:
                failed += 1
                print(f"   takeover failed: {e}")
    return sorted(times), failed, vb.log().count("Guru Meditation")


def report(label, n, times, failed, resets):
    print(f"{label} takeovers: {n}")
    print(f"{label} failed: {failed}")
    print(f"{label} deadlock resets absorbed: {resets}")
    print(f"{label} takeover time median: {statistics.median(times) * 1000:.0f} ms")
    print(f"{label} takeover time p95: {times[int(len(times) * 0.95) - 1] * 1000:.0f} ms")
    print(f"{label} takeover time max: {times[-1] * 1000:.0f} ms")


def main():
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="edgeshadow-takeover-") as tmp:
        work = Path(tmp) / "firmware"
        flash = work / "flash"
        shutil.copytree(FIRMWARE_DIR, flash, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cfg = json.loads((DATA_DIR / "configs" / "grid-sensor-sim.json").read_text())
        (flash / "config.json").write_text(json.dumps(dict(cfg, thing="takeover-001")))
        scenarios.prepare("nominal", "takeover-001", 0, work / "sim")
        with VirtualBoard(work, thing="takeover-001", scenario=None) as vb:
            fw = takeovers(vb, TAKEOVERS, 0.3, rnd)
        worst = Path(tmp) / "compiling"
        (worst / "flash").mkdir(parents=True)
        (worst / "flash" / "main.py").write_text(COMPILING_MAIN)
        with VirtualBoard(worst, thing="takeover-002", firmware=False) as vb:
            wc = takeovers(vb, WORST_CASE_TAKEOVERS, 0.05, rnd)
    report("firmware", TAKEOVERS, *fw)
    report("compiling main.py", WORST_CASE_TAKEOVERS, *wc)
    return 1 if fw[1] or wc[1] else 0


if __name__ == "__main__":
    sys.exit(main())
