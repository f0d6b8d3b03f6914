"""`edgeshadow bench`: production bench test of a board's sensors over one serial connection."""
import argparse
from pathlib import Path

from host_tools.bench import check as lib
from host_tools.errors import EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError
from host_tools.output import NoProgress, Progress, add_json_arg, emit, say

EPILOG = """exit codes (for a production line):
  0  PASS: every metric within its limits
  1  FAIL: at least one metric failed (reasons printed; --json has the details)
  2  usage error (bad arguments)
  3  could not test: the board did not answer, has no firmware/config, or the test broke off
  130 interrupted (Ctrl-C; the firmware is restarted first)

output: the verdicts on stdout (or one JSON document with --json, the series included);
progress on stderr.
limits: host_tools/data/bench_limits.json (defaults, then per driver, board and SKU); a SKU's
ratings in the device config cap the expected range of rated metrics."""


def register(sub):
    p = sub.add_parser("bench", help="bench-test a board's sensors (PASS/FAIL per metric)",
                       description="Stop the firmware's main loop, read every configured metric N "
                                   "times through the firmware's own drivers and calibration, judge "
                                   "each against its limits, and restart the firmware.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial port of the board (a virtual board's pty works too)")
    p.add_argument("--samples", type=int, default=20, metavar="N", help="reads per metric (default 20)")
    p.add_argument("--interval", type=float, default=0.0, metavar="S",
                   help="seconds between reads (default 0: back to back)")
    add_json_arg(p, "the full report (with the series)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="draw each metric's series here")
    p.add_argument("--limits", type=Path, default=lib.LIMITS_FILE, metavar="FILE",
                   help="limits file (default: the bundled bench_limits.json)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=do_bench)


def check_json_target(target):
    """Refuse a --json FILE that cannot be written before the bench runs."""
    if target in (None, "-"):
        return
    path = Path(target)
    if path.is_dir():
        raise EdgeshadowError(f"--json {path}: is a folder; give a file name", exit_code=EXIT_USAGE)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeshadowError(f"--json {path}: folder {parent} does not exist", exit_code=EXIT_USAGE)


def do_bench(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    if args.samples < 1:
        raise EdgeshadowError(f"--samples {args.samples}: must be at least 1", exit_code=EXIT_USAGE)
    if args.interval < 0:
        raise EdgeshadowError(f"--interval {args.interval:g}: must be >= 0", exit_code=EXIT_USAGE)
    check_json_target(args.json)
    if args.plot is not None:
        from host_tools.bench import plot
        plot.check_path(args.plot)
    try:
        limits = lib.load_limits(args.limits)
    except EdgeshadowError as e:  # a --limits file that cannot be used is a bad argument
        raise EdgeshadowError(f"--limits: {e.args[0]}", hint=e.hint, exit_code=EXIT_USAGE) from None
    report = _run(args, limits)
    emit(args, report, lambda: print("\n".join(lib.summary_lines(report)), flush=True))
    if args.plot is not None:
        from host_tools.bench import plot
        plot.plot(report, args.plot)
        say(f"wrote {args.plot}")
    if report.get("restart") != "ok":
        say(f"edgeshadow: error: the firmware did not restart: {report.get('restart')}")
        return EXIT_UNTESTED
    return lib.EXIT_PASS if report["result"] == "PASS" else lib.EXIT_FAIL


def _run(args, limits):
    from host_tools.device.link import BoardLink
    quiet = args.quiet

    def progress(msg):
        if not quiet:
            say(f"bench: {msg}")

    if not quiet:
        say(f"bench: opening {args.port}")
    try:
        with BoardLink(args.port) as link, _reads(args.samples, quiet) as bar:
            return lib.run_bench(link, samples=args.samples, interval_s=args.interval, say=progress,
                                 on_reads=bar.advance, limits_data=limits)
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        raise EdgeshadowError(f"could not test: cannot use {args.port}: {e.strerror or e}",
                              exit_code=EXIT_UNTESTED)
    except EdgeshadowError as e:  # anything that stops the bench means: not tested
        raise EdgeshadowError(f"could not test: {e}", exit_code=EXIT_UNTESTED)




def _reads(total, quiet):
    return NoProgress() if quiet else Progress("bench reads", total=total, unit="reads")
