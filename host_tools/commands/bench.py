"""`edgeshadow bench`: production bench test of a board's sensors over one serial connection."""
import sys
from pathlib import Path

from host_tools.bench import check as lib
from host_tools.errors import EdgeshadowError

EPILOG = """exit codes (for a production line):
  0  PASS: every metric within its limits
  1  FAIL: at least one metric failed (reasons printed; --json has the details)
  2  usage error (bad arguments)
  3  could not test: the board did not answer, has no firmware/config, or the test broke off

limits: host_tools/data/bench_limits.json (defaults, then per driver, board and SKU); a SKU's
ratings in the device config cap the expected range of rated metrics."""


def register(sub):
    p = sub.add_parser("bench", help="bench-test a board's sensors (PASS/FAIL per metric)",
                       description="Stop the firmware's main loop, read every configured metric N "
                                   "times through the firmware's own drivers and calibration, judge "
                                   "each against its limits, and restart the firmware.",
                       epilog=EPILOG, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial port of the board (a virtual board's pty works too)")
    p.add_argument("--samples", type=int, default=20, metavar="N", help="reads per metric (default 20)")
    p.add_argument("--interval", type=float, default=0.0, metavar="S",
                   help="seconds between reads (default 0: back to back)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report (with series) here")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="draw each metric's series here")
    p.add_argument("--limits", type=Path, default=lib.LIMITS_FILE, metavar="FILE",
                   help="limits file (default: the bundled bench_limits.json)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=do_bench)


def do_bench(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    if args.samples < 1:
        raise EdgeshadowError("--samples must be at least 1", exit_code=2)
    if args.interval < 0:
        raise EdgeshadowError("--interval must be >= 0", exit_code=2)
    for out in (args.json, args.plot):
        if out is not None and not out.parent.is_dir():
            raise EdgeshadowError(f"cannot write {out}: folder {out.parent} does not exist", exit_code=2)
    limits = lib.load_limits(args.limits)
    from host_tools.device.link import BoardLink

    def progress(msg):
        if not args.quiet:
            print(f"bench: {msg}", file=sys.stderr, flush=True)

    try:
        with BoardLink(args.port) as link:
            report = lib.run_bench(link, samples=args.samples, interval_s=args.interval,
                                   progress=progress, limits_data=limits)
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        raise EdgeshadowError(f"could not test: cannot use {args.port}: {e.strerror or e}",
                              exit_code=lib.EXIT_UNTESTED)
    except EdgeshadowError as e:
        if e.exit_code != lib.EXIT_UNTESTED:  # anything that stops the bench means: not tested
            raise EdgeshadowError(f"could not test: {e}", exit_code=lib.EXIT_UNTESTED)
        raise
    for line in lib.summary_lines(report):
        print(line)
    if args.json:
        lib.write_json(report, args.json)
        print(f"report written: {args.json}")
    if args.plot:
        lib.plot(report, args.plot)
        print(f"plot written: {args.plot}")
    if report.get("restart") != "ok":
        print(f"edgeshadow: error: the firmware did not restart: {report.get('restart')}", file=sys.stderr)
        return lib.EXIT_UNTESTED
    return lib.EXIT_PASS if report["result"] == "PASS" else lib.EXIT_FAIL
