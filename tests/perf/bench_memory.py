"""The firmware's memory on the ESP32-like runtime (issue 10's figures):
- imported-code footprint per package (edge, net, drivers, app), compiled to .mpy as deploy sends it;
  `bench_memory.py --firmware DIR` measures another tree (e.g. an older checkout) the same way;
- the smallest GC heap (8 KB steps) in which the whole firmware runs MEM_SECONDS (default 60) on a
  virtual board against the real broker with a delta applied, no MemoryError and no reboot;
- heap.min_free from the shadow at runtimes.NEEDED_HEAP and at the board's 112,000 B.
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
    from _budget import run_firmware
    seconds = float(os.environ.get("MEM_SECONDS", "60"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with local_stack(tmp / "broker", tmp / "ca") as (broker, _svc, _state):
            runs = 0

            def run(heap):
                nonlocal runs
                runs += 1
                r = run_firmware(tmp / f"run{runs}", broker, tmp / "ca", heap, seconds)
                state = "runs" if r["ok"] else "fails: " + "; ".join(r["failures"][-1:] or ["no delta applied"])
                print(f"  heap {heap // 1024} KB, {seconds:.0f} s: {state}", flush=True)
                return r
            for heap in sorted({runtimes.NEEDED_HEAP, 112000}):
                r = run(heap)
                if r["shadow_heap"]:
                    print(f"heap.min_free at {heap} B: {r['shadow_heap']['min_free']} bytes")
            heap, smallest = runtimes.NEEDED_HEAP + 16 * 1024, None
            while heap >= 64 * 1024 and run(heap)["ok"]:
                smallest = heap
                heap -= 8 * 1024
            print(f"smallest heap the whole firmware runs {seconds:.0f} s in: "
                  f"{smallest // 1024 if smallest else 'more than ' + str(runtimes.NEEDED_HEAP // 1024 + 16)} KB (8 KB steps; target 80 KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
