"""The learned model's cost (issue 16, tests/perf/run.py): the reference config with and without
the two trained `model` rules, on the MicroPython unix port and on the ESP32-like runtime
(32-bit objects, float32; skipped with a note when .venv/bin/micropython-esp32like is absent).

Prints microseconds and bytes allocated per sample (the pipeline's whole sample), the RAM
edge.model costs imported (gc.mem_alloc() before/after), the RAM a Device holds live with the
model rules beyond one without them, and the model's size in the config and as a shadow delta.
The streams are generated (host_tools.model.streams); the model is trained on 14 normal days.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from host_tools.model import evaluate as model_eval  # noqa: E402
from host_tools.model import streams
from host_tools.model import train

RUNTIMES = {"micropython unix": ROOT / ".venv" / "bin" / "micropython",
            "esp32like": ROOT / ".venv" / "bin" / "micropython-esp32like"}
N = 2000

MP_SCRIPT = r"""
import gc, json, time, sys
gc.collect()
a = gc.mem_alloc()
from edge.pipeline import Device
gc.collect()
b = gc.mem_alloc()
from edge import model
gc.collect()
print("import edge.pipeline (and config, rules, ...): %d bytes" % (b - a))
print("import edge.model: %d bytes" % (gc.mem_alloc() - b))
cfg = json.loads(open(sys.argv[1]).read())
plain = dict(cfg)
plain["rules"] = [r for r in cfg["rules"] if r["type"] != "model"]
lines = open(sys.argv[2]).read().split("\n")
n_warm = len(lines) - 1 - N_SAMPLES
run = [json.loads(l) for l in lines[n_warm:n_warm + N_SAMPLES]]
for name, c in (("without model", plain), ("with model", cfg)):
    gc.collect()
    a = gc.mem_alloc()
    d = Device(c)
    gc.collect()
    built = gc.mem_alloc() - a
    for l in lines[:n_warm]:  # past the model's warm-up (5 thermal lags) and the zscore's learning
        s = json.loads(l)
        d.process(s["ts"], s["raw"])
    best = None  # the fastest of 4 blocks of 500 samples: the machine may be shared
    for i in range(0, len(run), 500):
        t0 = time.ticks_us()
        for s in run[i:i + 500]:
            d.process(s["ts"], s["raw"])
        t = time.ticks_diff(time.ticks_us(), t0) / len(run[i:i + 500])
        best = t if best is None or t < best else best
    alloc = 0
    d = Device(c)  # again, for the allocation count (the timing above consumed the samples)
    for l in lines[:n_warm]:
        s = json.loads(l)
        d.process(s["ts"], s["raw"])
    for i in range(0, len(run), 100):
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for s in run[i:i + 100]:
            d.process(s["ts"], s["raw"])
        alloc += gc.mem_alloc() - a
        gc.enable()
    print("%s: %.0f us/sample (fastest block)" % (name, best))
    print("%s: %d bytes allocated/sample" % (name, alloc // len(run)))
    print("%s: %d bytes to build the Device" % (name, built))
    d = None
rules = [r for r in cfg["rules"] if r["type"] == "model"]
gc.collect()
a = gc.mem_alloc()
ms = [model.Model(r, None) for r in rules]
for i in range(n_warm):
    s = json.loads(lines[i])
    for m in ms:
        m.see(s["raw"])
        m.check(s["raw"][m.metric], s["ts"], False)
s = m = None
gc.collect()
print("the %d model rules' objects and state, live after %d samples: %d bytes" % (len(ms), n_warm, gc.mem_alloc() - a))
""".replace("N_SAMPLES", str(N))


def main():
    spec = streams.load_spec()
    dev = streams.device(spec, "grid-sensor-001", seed=1)
    nominal, _ = streams.stream(spec, dev, 0, model_eval.TRAIN_DAYS)
    cfg0 = model_eval.base_config()
    rules, _ = train.train_thing(dict(cfg0, thing=dev["thing"]), nominal)
    cfg = train.with_model(cfg0, dev["thing"], rules)
    test, _ = streams.stream(spec, dev, 30, 0.5)  # 4320 samples from midnight: warm-up, then N timed
    print(f"model rules in the config: {len(json.dumps(rules, separators=(',', ':')))} bytes "
          f"(2 rules); as a shadow delta with the other rules: {train.delta_size(cfg)} bytes of 8192",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cfg.json").write_text(json.dumps(cfg))
        streams.write_jsonl(test, tmp / "test.jsonl")
        (tmp / "bench.py").write_text(MP_SCRIPT)
        env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
        for name, exe in RUNTIMES.items():
            if not exe.exists():
                print(f"{name}: skipped ({exe} is absent; `make esp32like` builds it)")
                continue
            proc = subprocess.run([str(exe), "-X", "heapsize=4M", str(tmp / "bench.py"),
                                   str(tmp / "cfg.json"), str(tmp / "test.jsonl")],
                                  env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            for line in proc.stdout.splitlines():
                print(f"{name}: {line}")
    print("note: the unix port has 8-byte pointers; the esp32like build 4-byte ones and float32, "
          "as an ESP32 (whose CPU is slower: read its us as relative)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
