"""Pipeline cost per sample on the MicroPython unix port and the ESP32-like runtime (32-bit,
float32; a large heap here: it holds the recorded samples), the issue's config (tests/perf/run.py).

Prints microseconds per sample (gc enabled, as on a board) and bytes allocated per sample
(gc.mem_alloc() deltas over blocks of samples with the gc disabled), for a nominal stream and for
the issue's anomaly generator on every sample (worst case: most samples raise or hold alerts).
Note: the unix port is 64-bit (8-byte pointers); an ESP32 allocates somewhat less per object.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from host_tools.sim import reference as scenario  # noqa: E402

RUNTIMES = (("micropython unix", [str(ROOT / ".venv" / "bin" / "micropython")]),
            ("esp32like", [str(ROOT / ".venv" / "bin" / "micropython-esp32like"), "-X", "heapsize=4M"]))
CONFIG = ROOT / "host_tools" / "data" / "configs" / "grid-sensor.json"
N = 2000

MP_SCRIPT = r"""
import gc, json, time, sys
from edge.pipeline import Device
cfg = json.loads(open(sys.argv[1]).read())
for name, path in ((sys.argv[3], sys.argv[2]), (sys.argv[5], sys.argv[4])):
    samples = [json.loads(l) for l in open(path)]
    n = len(samples)
    d = Device(cfg)
    for s in samples[:200]:  # warm-up past the zscore learning phase
        d.process(s["ts"], s["raw"])
    gc.collect()
    t0 = time.ticks_us()
    for s in samples:
        d.process(s["ts"], s["raw"])
    dt = time.ticks_diff(time.ticks_us(), t0)
    alloc = 0
    block = 100
    for i in range(0, n, block):
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for s in samples[i:i + block]:
            d.process(s["ts"], s["raw"])
        alloc += gc.mem_alloc() - a
        gc.enable()
    print("%s time: %.1f us/sample" % (name, dt / n))
    print("%s alloc: %d bytes/sample" % (name, alloc // n))
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {}
        for name, p in (("nominal", 0.0), ("anomalous", 1.0)):
            files[name] = tmp / f"{name}.jsonl"
            scenario.write_jsonl(scenario.generate(1, N, seed=3, anomaly_probability=p), files[name])
        (tmp / "bench.py").write_text(MP_SCRIPT)
        env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
        for runtime, cmd in RUNTIMES:
            if not Path(cmd[0]).exists():
                print(f"pipeline ({runtime}): skipped, {cmd[0]} is not built")
                continue
            proc = subprocess.run(cmd + [str(tmp / "bench.py"), str(CONFIG), str(files["nominal"]),
                                         "nominal", str(files["anomalous"]), "anomalous"],
                                  env=env, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            for line in proc.stdout.splitlines():
                name, rest = line.split(" ", 1)
                what, value = rest.split(": ")
                print(f"pipeline {what} ({name}, {runtime}): {value}")
    print(f"target: <= 100 us/sample and <= 2048 bytes/sample (issue 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
