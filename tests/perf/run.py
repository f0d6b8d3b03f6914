"""`make perf`: run every tests/perf/bench_*.py, print its figures and write them to perf.json.

Each benchmark is a standalone script that prints `figure: value unit` lines. Benchmarks measure;
nothing here asserts a timing. perf.json (repo root, or PERF_JSON=path) holds every figure as
{"bench", "name", "value", "unit", "runtime"} so runs can be compared: `runtime` is the runtime the
figure was measured on when its name says so ("micropython unix", "esp32like"), else "cpython"
(the host tools, and benchmarks that time a whole stack from the host).
"""
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = re.compile(r"^\s*(?P<name>[^:]+?):\s+(?P<value>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*$")
RUNTIMES = (("esp32like", "micropython esp32like"), ("micropython", "micropython unix"))


def parse_figure(line):
    """{"name", "value", "unit", "runtime"} of a `name: value unit` line, or None."""
    m = FIGURE.match(line)
    if not m:
        return None
    name = m["name"].strip()
    runtime = "cpython"
    for word, label in RUNTIMES:
        if word in name.lower():
            runtime = label
            break
    value = float(m["value"])
    if value.is_integer() and "." not in m["value"] and "e" not in m["value"].lower():
        value = int(value)
    return {"name": name, "value": value, "unit": m["unit"], "runtime": runtime}


def run_bench(script):
    """(exit code, figures) of one benchmark; its output is printed as it comes."""
    figures = []
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        print(line, end="", flush=True)
        fig = parse_figure(line)
        if fig is not None:
            fig["bench"] = script.stem
            figures.append(fig)
    return proc.wait(), figures


def main(argv):
    only = argv[1:]
    failed = 0
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
              "python": platform.python_version(), "benches": {}, "figures": []}
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(o in script.stem for o in only):
            continue
        print(f"== {script.stem}", flush=True)
        t0 = time.monotonic()
        code, figures = run_bench(script)
        if code != 0:
            failed += 1
            print(f"   {script.stem} FAILED (exit {code})")
        seconds = round(time.monotonic() - t0, 1)
        report["benches"][script.stem] = {"exit": code, "seconds": seconds}
        report["figures"] += figures
        print(f"   ({seconds:.1f} s)", flush=True)
    out = Path(os.environ.get("PERF_JSON") or ROOT / "perf.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"figures: {len(report['figures'])} written to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
