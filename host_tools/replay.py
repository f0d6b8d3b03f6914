"""`edgeshadow replay`: the firmware's own pipeline (firmware/edge) over recorded samples.

The CPython runtime imports firmware/edge directly; the MicroPython runtime runs
firmware/edge/replay.py inside .venv/bin/micropython. Both write byte-identical output: the
writer (edge.jsonl) sorts keys and formats floats with integer arithmetic.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
RUNTIMES = ("cpython", "micropython", "esp32like")


def firmware_modules():
    """Import firmware/edge under CPython (the same files the board runs)."""
    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))
    import edge.config
    import edge.replay
    return edge.config, edge.replay


def load_config(config_path):
    """Read and validate a device config; raise EdgeshadowError naming every problem."""
    econfig, _ = firmware_modules()
    try:
        data = json.loads(Path(config_path).read_text())
    except OSError as e:
        raise EdgeshadowError(f"cannot read config {config_path}: {e.strerror}")
    except ValueError as e:
        raise EdgeshadowError(f"{config_path} is not valid JSON: {e}")
    try:
        return econfig.load(data)
    except econfig.ConfigError as e:
        raise EdgeshadowError(f"{config_path} is not a valid config:\n  " + "\n  ".join(e.problems))


def _progress(n, t0, stream):
    if stream is not None and n % 5000 == 0:
        stream.write(f"  {n} lines ({time.monotonic() - t0:.1f} s)\n")
        stream.flush()


def replay(config_path, input_path, output_path=None, runtime="cpython", stderr=None, progress=None):
    """Replay input_path through the pipeline; output to output_path (default stdout).
    Bad lines go to `stderr` (default sys.stderr) with their line numbers and are skipped.
    Returns the exit code: 0 all lines good, 1 some lines bad."""
    if runtime not in RUNTIMES:
        raise EdgeshadowError(f"unknown runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    cfg = load_config(config_path)
    if not Path(input_path).is_file():
        raise EdgeshadowError(f"input {input_path} does not exist")
    err = stderr if stderr is not None else sys.stderr
    if runtime in ("micropython", "esp32like"):
        return _replay_micropython(config_path, input_path, output_path, err, runtime)
    _, ereplay = firmware_modules()
    out = open(output_path, "w") if output_path else sys.stdout
    t0 = time.monotonic()
    counter = [0]

    def lines():
        with open(input_path) as f:
            for line in f:
                counter[0] += 1
                _progress(counter[0], t0, progress)
                yield line

    try:
        good, bad = ereplay.run(cfg, lines(), out.write, lambda msg: err.write(msg + "\n"))
    finally:
        if out is not sys.stdout:
            out.close()
    return 1 if bad else 0


def _replay_micropython(config_path, input_path, output_path, err, runtime="micropython"):
    from host_tools.sim import runtimes
    binary = runtimes.path("unix" if runtime == "micropython" else runtime)
    env = dict(os.environ, MICROPYPATH=str(FIRMWARE))
    cmd = [str(binary), str(FIRMWARE / "edge" / "replay.py"), str(config_path), str(input_path)]
    if output_path:
        cmd.append(str(output_path))
    proc = subprocess.run(cmd, env=env, stdout=None if output_path else sys.stdout,
                          stderr=subprocess.PIPE, text=True)
    err.write(proc.stderr)
    if proc.returncode in (0, 1):
        return proc.returncode
    raise EdgeshadowError(f"MicroPython replay failed (exit {proc.returncode})")
