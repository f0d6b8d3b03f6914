"""The firmware's memory on the ESP32-like runtime (issue 10's figures):
- imported-code footprint per package (edge, net, drivers, app), compiled to .mpy as deploy sends it;
  `bench_memory.py --firmware DIR` measures another tree (e.g. an older checkout) the same way;
- the smallest GC heap (8 KB steps) in which the whole firmware runs MEM_SECONDS (default 60) on a
  virtual board against the real broker with a delta applied, no MemoryError and no reboot, in
  each of MEM_RUNS runs (default 2): from a ROMFS partition (modules used in place from flash; the
  80 KB budget, runtimes.BUDGET, is met there) and from files (modules loaded into the heap);
- heap.min_free from the shadow at the 80 KB budget (ROMFS) and at runtimes.NEEDED_HEAP (files).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "host"))
from host_tools.sim import runtimes  # noqa: E402
from host_tools.device.deploy import local_files  # noqa: E402

PACKAGES = {
    "edge": ["edge", "edge.status", "edge.alerts", "edge.calibration", "edge.rules",
             "edge.diagnosis", "edge.pipeline", "edge.shadow"],
    "drivers": ["drivers", "drivers.system", "drivers.ac_rms", "drivers.sensirion", "drivers.sht3x", "board"],
    "net": ["net", "store", "store.spool", "net.backoff", "net.mqtt", "net.connection", "net.forwarder",
            "net.shadow_client"],
    "app": ["app"],
}
PROBE = r"""
import gc, sys
def imp(names):
    gc.collect(); a = gc.mem_alloc()
    for n in names:
        try:
            __import__(n)
        except ImportError:
            pass
    gc.collect(); return gc.mem_alloc() - a
import asyncio, json
for line in sys.argv[1:]:
    name, mods = line.split("=")
    print("%s %d" % (name, imp(mods.split(","))))
"""


def footprint(firmware_dir):
    with tempfile.TemporaryDirectory() as tmp:
        files, _ = local_files(firmware_dir, "xtensawin")
        for path, data in files.items():
            dest = Path(tmp) / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        env = dict(os.environ, MICROPYPATH=f".frozen:{tmp}:{ROOT / 'host_tools' / 'sim' / 'mpy'}")
        args = [f"{k}={','.join(v)}" for k, v in PACKAGES.items()]
        out = subprocess.run([str(runtimes.path("esp32like")), "-X", "heapsize=1M", "-c", PROBE] + args,
                             env=env, capture_output=True, text=True, timeout=60, cwd=tmp)
        if out.returncode:
            raise SystemExit(out.stdout + out.stderr)
        return {line.split()[0]: int(line.split()[1]) for line in out.stdout.splitlines()}


class Runner:
    """Whole-firmware runs against one local broker, each a new thing (its own shadow)."""

    def __init__(self, tmp, broker, seconds, runs_each):
        self.tmp, self.broker, self.seconds, self.runs_each = tmp, broker, seconds, runs_each
        self.runs = 0

    def run(self, heap, romfs):
        """(ok, lowest heap.min_free) over runs_each runs (stops at the first failure)."""
        from _budget import run_firmware
        low = None
        for _ in range(self.runs_each):
            self.runs += 1
            r = run_firmware(self.tmp / f"run{self.runs}", self.broker, self.tmp / "ca", heap, self.seconds,
                             thing=f"grid-mem-{self.runs:03d}", romfs=romfs)
            state = "runs" if r["ok"] else "fails: " + "; ".join(r["failures"][-1:] or ["no delta applied"])
            print(f"  heap {heap // 1024} KB from {'ROMFS' if romfs else 'files'}, {self.seconds:.0f} s: {state}",
                  flush=True)
            if not r["ok"]:
                return False, None
            if r["shadow_heap"] and (low is None or r["shadow_heap"]["min_free"] < low):
                low = r["shadow_heap"]["min_free"]
        return True, low

    def smallest(self, first, romfs):
        """(smallest heap that runs, in 8 KB steps from `first`, down to 64 KB or up by at most
        32 KB; (heap, min_free) at `first`, or at the first heap that ran above it)."""
        ok, low = self.run(first, romfs)
        heap, at = first, (first, low) if ok and low is not None else None
        while not ok and heap < first + 32 * 1024:
            heap += 8 * 1024
            ok, low = self.run(heap, romfs)
            at = (heap, low) if ok and low is not None else None
        if not ok:
            return None, None
        smallest = heap
        while heap - 8 * 1024 >= 64 * 1024:
            heap -= 8 * 1024
            if not self.run(heap, romfs)[0]:
                break
            smallest = heap
        return smallest, at


def main(argv):
    if not runtimes.available("esp32like"):
        print("memory: skipped, the ESP32-like runtime is not built (`make esp32like`)")
        return 0
    fw = Path(argv[argv.index("--firmware") + 1]) if "--firmware" in argv else ROOT / "firmware"
    sizes = footprint(fw)
    for k, v in sizes.items():
        print(f"imported code, {k}: {v} bytes (ESP32-like runtime, .mpy)")
    print(f"imported code, total: {sum(sizes.values())} bytes")
    if "--firmware" in argv:
        return 0
    from host_tools.cloud.broker import local_stack
    seconds = float(os.environ.get("MEM_SECONDS", "60"))
    runs_each = int(os.environ.get("MEM_RUNS", "2"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with local_stack(tmp / "broker", tmp / "ca") as (broker, _svc, _state):
            runner = Runner(tmp, broker, seconds, runs_each)
            for label, romfs, first in (("from ROMFS", "firmware", runtimes.BUDGET),
                                        ("from files", 0, runtimes.NEEDED_HEAP)):
                smallest, low = runner.smallest(first, romfs)
                if low is not None:
                    print(f"heap.min_free esp32like at {low[0] // 1024} KB {label}: {low[1]} bytes")
                print(f"smallest heap esp32like {label}: {smallest // 1024 if smallest else 0} KB "
                      f"(runs {seconds:.0f} s, {runs_each} of {runs_each} runs; 8 KB steps from "
                      f"{first // 1024} KB; budget {runtimes.BUDGET // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
