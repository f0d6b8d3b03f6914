"""`make perf`: run every tests/perf/bench_*.py and print its figures.

Each benchmark is a standalone script that prints `figure: value unit` lines. Benchmarks measure;
nothing here asserts a timing.
"""
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv):
    only = argv[1:]
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(o in script.stem for o in only):
            continue
        print(f"== {script.stem}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent.parent)
        if proc.returncode != 0:
            failed += 1
            print(f"   {script.stem} FAILED (exit {proc.returncode})")
        print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
