"""`edgeshadow replay`: run the firmware's pipeline over recorded samples (JSONL in, JSONL out)."""
import sys

from host_tools.errors import EdgeshadowError
from host_tools.output import Progress, add_json_arg, emit, json_to_stdout

RUNTIMES = ("cpython", "micropython", "esp32like")  # host_tools.replay.RUNTIMES, without importing it
PROGRESS_LINES = 10000  # about a second of replay: a shorter one shows no progress


def register(sub):
    p = sub.add_parser(
        "replay", help="run the edge pipeline over recorded samples",
        description="Run the firmware's own pipeline over recorded samples. Input: one "
                    '{"ts", "thing", "raw": {metric: number|null}} object a line, UTF-8. Output: one '
                    '{"ts", "thing", "values", "alerts", "diagnoses"} line per input line. Bad lines '
                    "are reported on stderr with their line number and skipped (exit code 1). Progress "
                    f"goes to stderr for inputs of {PROGRESS_LINES} lines or more (when the output is a "
                    "file or stdout is not a terminal).",
        epilog="--json gives the summary (lines, records written, bad lines and their first messages): "
               "the results themselves are the JSONL output, so --json on stdout needs --output.")
    p.add_argument("--config", required=True, metavar="CONFIG.json", help="device config")
    p.add_argument("--input", required=True, metavar="IN.jsonl", help="recorded samples")
    p.add_argument("--output", metavar="OUT.jsonl",
                   help="write results here, whole at the end (default: stdout, as they come)")
    p.add_argument("--runtime", choices=RUNTIMES, default="cpython",
                   help="run under CPython (default), inside the MicroPython unix port, or inside "
                        "the ESP32-like runtime (32-bit, float32: as on a board)")
    add_json_arg(p, "the summary")
    p.set_defaults(func=do_replay)


def do_replay(args):
    from host_tools import replay as lib
    if json_to_stdout(args) and not args.output:
        raise EdgeshadowError("--json on stdout needs --output (stdout carries the JSONL results); "
                              "or give --json FILE", exit_code=2)
    interactive = not args.output and sys.stdout.isatty()  # a bar would mix with the results

    def progress(lines):
        if lines >= PROGRESS_LINES and not interactive:
            return Progress(f"replaying {args.input}", total=lines, unit="lines")
    summary = lib.run(args.config, args.input, args.output, args.runtime, progress=progress)
    emit(args, summary)
    return summary["exit"]
