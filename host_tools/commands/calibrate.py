"""`edgeshadow calibrate`: fit a metric's calibration against known references; write it to the board."""
import argparse
import sys

from host_tools.errors import EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError
from host_tools.output import add_json_arg, emit, json_to_stdout, say

EPILOG = """exit codes:
  0  written (or, with --dry-run, fitted and shown)
  1  refused or failed: a degenerate fit (zero gain, not monotonic), a residual beyond the
     bench tolerance (without --force), not confirmed, an invalid config, an unknown metric
  2  usage error (bad arguments, too few distinct references, no terminal and no --yes)
  3  could not test: the board did not answer, has no firmware/config, or the run broke off
  130 interrupted (Ctrl-C; the firmware is restarted first)

output: the fit and the before/after error at each reference on stdout, shown BEFORE anything
is written (or one JSON document with --json); progress and prompts on stderr.
tolerance: host_tools/data/bench_limits.json (residual_max / residual_max_pct, else the metric's
noise limit at the largest reference)."""


def register(sub):
    p = sub.add_parser("calibrate", help="calibrate one metric against known reference values",
                       description="Apply known reference values one after another (asked for, or "
                                   "from --ref), sample the raw reading at each, fit by least squares, "
                                   "check and show the fit with the error before and after at each "
                                   "reference, then (confirmed, or --yes) write the calibration with "
                                   "its provenance into the board's /config.json (atomically). On the "
                                   "virtual board the simulation applies each reference.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial port of the board (a virtual board's pty works too)")
    p.add_argument("--metric", required=True, metavar="NAME", help="the metric to calibrate (e.g. voltage)")
    p.add_argument("--ref", type=float, nargs="+", action="extend", metavar="VALUE",
                   help="reference values in the metric's unit (non-interactive; at least 2 distinct; "
                        "`--ref 100 300` or `--ref 100 --ref 300`)")
    p.add_argument("--samples", type=int, default=10, metavar="N", help="reads per reference (default 10)")
    p.add_argument("--degree", type=int, default=1, choices=(1, 2, 3),
                   help="1: linear gain/offset (default); 2, 3: polynomial")
    p.add_argument("--dry-run", action="store_true", help="fit and show, but do not write the config")
    p.add_argument("--yes", "-y", action="store_true", help="write without asking (for scripts)")
    p.add_argument("--force", action="store_true",
                   help="write even when the largest residual exceeds the bench tolerance")
    add_json_arg(p, "the fit, the checks and the before/after table")
    p.set_defaults(func=do_calibrate)


def do_calibrate(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    from host_tools.bench import calibrate as lib  # numpy: imported by this command only
    from host_tools.bench import check
    interactive = sys.stdin.isatty()
    lib.check_request(args.ref, args.degree, args.samples)
    if not (interactive or args.yes or args.dry_run):
        raise EdgeshadowError("calibrate writes the board's config only when confirmed: run it in a "
                              "terminal, or pass --yes (or --dry-run to only see the fit)", exit_code=EXIT_USAGE)
    if args.ref is None and not interactive:
        raise EdgeshadowError("no --ref values and no terminal to ask for them: pass --ref VALUE VALUE ...",
                              exit_code=EXIT_USAGE)
    from host_tools.commands.bench import check_json_target
    check_json_target(args.json)
    out = sys.stderr if json_to_stdout(args) else sys.stdout

    def show(result):
        print("\n".join(lib.fit_lines(result)), file=out, flush=True)

    ask = _ask if interactive else None
    confirm = None if args.yes else _confirm
    say(f"calibrate: opening {args.port}")
    with _open(args.port) as link:
        r = lib.run_calibration(link, args.metric, references=args.ref, samples=args.samples,
                                degree=args.degree, ask=ask, say=lambda m: say(f"calibrate: {m}"),
                                dry_run=args.dry_run, show=show, confirm=confirm, force=args.force,
                                limits_data=check.load_limits())
    for w in r.get("warnings", ()):
        say(f"calibrate: warning: {w}")
    if r["written"]:
        text = (f"written to the board's /config.json: metrics.{r['metric']}.calibration = "
                f"{lib.stage_text(r['calibration'])}")
    else:
        text = "dry run: the board's config was not changed"
    emit(args, r, text)
    return 0


def _open(port):
    """The BoardLink; a port that cannot be opened means: could not test (exit 3)."""
    from host_tools.device.link import BoardLink
    try:
        return BoardLink(port)
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        raise EdgeshadowError(f"cannot use {port}: {e.strerror or e}", exit_code=EXIT_UNTESTED)
    except EdgeshadowError as e:
        raise EdgeshadowError(str(e), exit_code=EXIT_UNTESTED)


def _ask(prompt):
    say(prompt, end="")
    return input()


def _confirm(result):
    answer = _ask(f"write this calibration of {result['metric']} to the board's /config.json? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
