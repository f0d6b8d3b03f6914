"""`edgeshadow replay`: the firmware's own pipeline (firmware/edge) over recorded samples.

The CPython runtime imports firmware/edge directly; the MicroPython runtimes run
firmware/edge/replay.py inside .venv/bin/micropython (or the ESP32-like build), its output relayed
through the host. Both write byte-identical output: the writer (edge.jsonl) sorts keys and formats
floats with integer arithmetic.

Checked before a line is replayed, with an error naming the file (and line): the config, the
input (readable, UTF-8 text: a binary file or another encoding stops at its first bad line), the
output (its folder exists). The output is written to a temporary file renamed into place at the
end: an interrupted replay leaves no half-written file, and --output may name the input.

    summary = run(config, "in.jsonl", "out.jsonl", runtime="micropython")
    summary["bad"], summary["records"], summary["problems"]
"""
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
RUNTIMES = ("cpython", "micropython", "esp32like")
PROBLEMS_KEPT = 100   # bad-line messages kept in the summary (all of them go to stderr)
_CHUNK = 1 << 20
_LONGEST_LINE = 64 << 20  # a "line" longer than this is no recorded sample (and would sit in memory)


def firmware_modules():
    """Import firmware/edge under CPython (the same files the board runs)."""
    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))
    import edge.config
    import edge.replay
    return edge.config, edge.replay


def _not_text(path, what, data, pos, lines_before):
    """The error for the byte at `pos` of `data` (whole lines) that makes `path` no UTF-8 text."""
    line = lines_before + data.count(b"\n", 0, pos) + 1
    column = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    if data[pos] == 0:
        return EdgeshadowError(f"{what} {path} line {line}: a NUL byte at column {column}: "
                               "a binary file, not JSON lines")
    return EdgeshadowError(f"{what} {path} line {line}: not UTF-8 text (byte 0x{data[pos]:02x} at "
                           f"column {column}); save it as UTF-8 JSON lines")


def text_lines(path, what="input"):
    """The number of lines in `path`, read through once; EdgeshadowError naming the file and the
    line when it cannot be read or is not UTF-8 text."""
    path = Path(path)
    if path.is_dir():
        raise EdgeshadowError(f"cannot read {what} {path}: it is a folder; give a file")
    if not path.exists():
        raise EdgeshadowError(f"cannot read {what} {path}: no such file")
    lines, carry = 0, b""
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(_CHUNK)
                data = carry + chunk
                nul = data.find(b"\0")  # a binary file: said at once, newlines or not
                end = len(data) if not chunk or nul >= 0 else data.rfind(b"\n") + 1
                whole, carry = data[:end], data[end:]
                try:
                    whole[:nul if nul >= 0 else len(whole)].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise _not_text(path, what, whole, e.start, lines)
                if nul >= 0:
                    raise _not_text(path, what, whole, nul, lines)
                if len(carry) > _LONGEST_LINE:
                    line = lines + whole.count(b"\n") + 1
                    raise EdgeshadowError(f"{what} {path} line {line}: longer than "
                                          f"{_LONGEST_LINE >> 20} MB: not JSON lines")
                lines += whole.count(b"\n") + (1 if not chunk and whole and not whole.endswith(b"\n") else 0)
                if not chunk:
                    return lines
    except OSError as e:
        raise EdgeshadowError(f"cannot read {what} {path}: {e.strerror or e}")


def load_config(config_path):
    """Read and validate a device config; raise EdgeshadowError naming every problem (one line)."""
    econfig, _ = firmware_modules()
    text_lines(config_path, "config")
    try:
        data = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except OSError as e:
        raise EdgeshadowError(f"cannot read config {config_path}: {e.strerror}")
    except ValueError as e:
        raise EdgeshadowError(f"config {config_path} is not valid JSON: {e}")
    try:
        return econfig.load(data)
    except econfig.ConfigError as e:
        raise EdgeshadowError(f"config {config_path} is not a valid config: " + "; ".join(e.problems))


def _open_output(output_path):
    """(file, temporary path) for the output, written in its own folder and renamed at the end."""
    out = Path(output_path)
    if out.is_dir():
        raise EdgeshadowError(f"cannot write output {out}: it is a folder; give a file name")
    parent = out.parent
    if not parent.is_dir():
        raise EdgeshadowError(f"cannot write output {out}: folder {parent} does not exist")
    tmp = parent / f".{out.name}.{os.getpid()}.tmp"  # the user's umask applies, as to OUT itself
    try:
        return open(tmp, "w", encoding="utf-8", newline="\n"), tmp
    except OSError as e:
        raise EdgeshadowError(f"cannot write output {out}: {e.strerror or e}")


def run(config_path, input_path, output_path=None, runtime="cpython", stderr=None, progress=None):
    """Replay input_path through the pipeline; output to output_path (default stdout). Bad lines
    go to `stderr` (default sys.stderr) as "line N: ..." and are skipped. `progress(lines)`, when
    given, returns an output.Progress for that many input lines (or None).

    Returns the summary: config, input, output, runtime, lines, records (output lines), bad,
    problems (the first PROBLEMS_KEPT messages), exit (0 all lines good, 1 some bad)."""
    if runtime not in RUNTIMES:
        raise EdgeshadowError(f"unknown runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    cfg = load_config(config_path)
    total = text_lines(input_path)
    err = stderr if stderr is not None else sys.stderr
    summary = {"config": str(config_path), "input": str(input_path),
               "output": str(output_path) if output_path else None, "runtime": runtime,
               "lines": total, "records": 0, "bad": 0, "problems": []}

    def warn(msg):
        err.write(msg + "\n")
        summary["bad"] += 1
        if len(summary["problems"]) < PROBLEMS_KEPT:
            summary["problems"].append(msg)

    out, tmp = _open_output(output_path) if output_path else (sys.stdout, None)
    bar = progress(total) if progress is not None else None
    try:
        with bar or contextlib.nullcontext():
            if runtime == "cpython":
                summary["records"] = _replay_cpython(cfg, input_path, out, warn, bar)
            else:
                summary["records"] = _replay_micropython(config_path, input_path, out, warn, runtime, bar)
            if bar is not None and bar.done < total:
                bar.advance(total - bar.done)
        if tmp:
            out.close()
            os.replace(tmp, output_path)
            tmp = None
    finally:
        if tmp:
            out.close()
            Path(tmp).unlink(missing_ok=True)
    summary["exit"] = 1 if summary["bad"] else 0
    return summary


def replay(config_path, input_path, output_path=None, runtime="cpython", stderr=None, progress=None):
    """run(), returning only the exit code: 0 all lines good, 1 some lines bad."""
    return run(config_path, input_path, output_path, runtime, stderr, progress)["exit"]


def _replay_cpython(cfg, input_path, out, warn, progress):
    _, ereplay = firmware_modules()

    def lines():
        with open(input_path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if progress is not None and n % 1000 == 0:
                    progress.advance(1000)
                yield line

    good, _ = ereplay.run(cfg, lines(), out.write, warn)
    return good


def _replay_micropython(config_path, input_path, out, warn, runtime, progress):
    """firmware/edge/replay.py inside MicroPython, its output relayed line by line (a reader that
    stops, `| head`, stops it; its progress is counted)."""
    from host_tools.sim import runtimes
    binary = runtimes.path("unix" if runtime == "micropython" else runtime)
    env = dict(os.environ, MICROPYPATH=str(FIRMWARE))
    cmd = [str(binary), str(FIRMWARE / "edge" / "replay.py"), str(config_path), str(input_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = []

    def relay_stderr():
        for raw in proc.stderr:
            msg = raw.decode("utf-8", "replace").rstrip("\n")
            if msg.startswith("line "):
                warn(msg)
            else:
                tail.append(msg)
    t = threading.Thread(target=relay_stderr, daemon=True)
    t.start()
    good = 0
    try:
        for raw in proc.stdout:
            out.write(raw.decode("utf-8"))
            good += 1
            if progress is not None and good % 1000 == 0:
                progress.advance(1000)
        code = proc.wait()
        t.join()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        t.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    if code not in (0, 1):
        why = tail[-1] if tail else f"exit {code}"
        raise EdgeshadowError(f"the {runtime} replay failed: {why}")
    return good
