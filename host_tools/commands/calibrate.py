"""`edgeshadow calibrate`: fit a metric's calibration against known references; write it to the board."""
import sys

from host_tools.bench import calibrate as lib
from host_tools.errors import EdgeshadowError


def register(sub):
    p = sub.add_parser("calibrate", help="calibrate one metric against known reference values",
                       description="Apply known reference values one after another (asked for, or "
                                   "from --ref), sample the raw reading at each, fit by least squares, "
                                   "show the residuals and write the calibration with its provenance "
                                   "into the board's /config.json (atomically). On the virtual board "
                                   "the simulation applies each reference. Exit codes: 0 written, "
                                   "1 error, 2 usage, 3 the board could not be reached or read.")
    p.add_argument("--port", required=True, help="serial port of the board (a virtual board's pty works too)")
    p.add_argument("--metric", required=True, metavar="NAME", help="the metric to calibrate (e.g. voltage)")
    p.add_argument("--ref", type=float, nargs="+", action="extend", metavar="VALUE",
                   help="reference values in the metric's unit (non-interactive; at least 2; `--ref 100 300` or `--ref 100 --ref 300`)")
    p.add_argument("--samples", type=int, default=10, metavar="N", help="reads per reference (default 10)")
    p.add_argument("--degree", type=int, default=1, choices=(1, 2, 3),
                   help="1: linear gain/offset (default); 2, 3: polynomial")
    p.add_argument("--dry-run", action="store_true", help="fit and show, but do not write the config")
    p.set_defaults(func=do_calibrate)


def do_calibrate(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    if args.samples < 1:
        raise EdgeshadowError("--samples must be at least 1", exit_code=2)
    from host_tools.device.link import BoardLink
    ask = None
    if sys.stdin.isatty():
        ask = input

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        with BoardLink(args.port) as link:
            r = lib.run_calibration(link, args.metric, references=args.ref, samples=args.samples,
                                    degree=args.degree, ask=ask, progress=progress, dry_run=args.dry_run)
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        raise EdgeshadowError(f"cannot use {args.port}: {e.strerror or e}", exit_code=lib.EXIT_UNTESTED)
    unit = r["unit"]
    print(f"{r['metric']}: fitted {r['stage']}")
    print(f"  {'reference':>12} {'raw':>12} {'residual':>12}")
    for ref, raw, res in zip(r["references"], r["raw"], r["residuals"]):
        print(f"  {ref:>12.6g} {raw:>12.6g} {res:>12.4g}")
    p = r["provenance"]
    print(f"  residual rms {p['residual_rms']:.4g} {unit}, max {p['residual_max']:.4g} {unit}")
    if r["written"]:
        print(f"written to the board's /config.json: metrics.{r['metric']}.calibration = {r['calibration']}")
    else:
        print("dry run: the board's config was not changed")
    return 0
