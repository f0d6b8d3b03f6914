"""`edgeshadow replay`: run the firmware's pipeline over recorded samples (JSONL in, JSONL out)."""
import sys

from host_tools import replay as lib


def register(sub):
    p = sub.add_parser(
        "replay", help="run the edge pipeline over recorded samples",
        description="Run the firmware's own pipeline over recorded samples. Input: one "
                    '{"ts", "thing", "raw": {metric: number|null}} object a line. Output: one '
                    '{"ts", "thing", "values", "alerts", "diagnoses"} line per input line. Bad lines '
                    "are reported on stderr with their line number and skipped (exit code 1).")
    p.add_argument("--config", required=True, metavar="CONFIG.json", help="device config")
    p.add_argument("--input", required=True, metavar="IN.jsonl", help="recorded samples")
    p.add_argument("--output", metavar="OUT.jsonl", help="write results here (default: stdout)")
    p.add_argument("--runtime", choices=lib.RUNTIMES, default="cpython",
                   help="run under CPython (default), inside the MicroPython unix port, or inside "
                        "the ESP32-like runtime (32-bit, float32: as on a board)")
    p.set_defaults(func=do_replay)


def do_replay(args):
    progress = sys.stderr if args.output and args.runtime == "cpython" else None
    return lib.replay(args.config, args.input, args.output, runtime=args.runtime, progress=progress)
