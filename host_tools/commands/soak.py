"""`edgeshadow soak`: virtual boards against the local stack under a chaos schedule, with a report."""
from pathlib import Path

from host_tools import ROOT
from host_tools.errors import EXIT_USAGE, EdgeshadowError
from host_tools.output import add_json_arg, emit, say

RUN_DIR = ROOT / "run"  # host_tools.cloud.broker.RUN_DIR, without importing the broker (and its TLS)


def register(sub):
    p = sub.add_parser("soak", help="virtual boards under broker/board kills, Wi-Fi drops and hostile deltas",
                       description="Run N virtual boards against the local broker and shadow service for a "
                                   "set time while a seeded chaos schedule kills and restarts the broker, the "
                                   "shadow service and boards, drops Wi-Fi, corrupts spool metadata between "
                                   "boots and sends valid and hostile deltas. Prints a report (readings lost, "
                                   "duplicated, out of order; reconnect times; reboots, crashes) and exits 1 "
                                   "on any loss, crash or hostile delta applied. Progress goes to stderr.")
    p.add_argument("--seconds", type=int, default=600, metavar="S", help="chaos duration, 10 to 86400 (default 600)")
    p.add_argument("--boards", type=int, default=5, metavar="N", help="virtual boards, 1 to 20 (default 5)")
    p.add_argument("--seed", type=int, help="schedule seed (default: random, printed in the report)")
    p.add_argument("--heap", metavar="SIZE", help="the boards' GC heap, e.g. 128k (default with the "
                   "ESP32-like runtime: the virtual board's own, 112000, the firmware's modules in its ROMFS)")
    p.add_argument("--runtime", choices=("auto", "unix", "esp32like"), default="auto",
                   help="auto: the ESP32-like runtime when it is built (make esp32like), else unix")
    p.add_argument("--workdir", type=Path, default=RUN_DIR / "soak", metavar="DIR",
                   help=f"boards, broker, logs (default {RUN_DIR / 'soak'}; emptied first)")
    add_json_arg(p, "the report")
    p.set_defaults(func=do_soak)


def do_soak(args):
    if not 10 <= args.seconds <= 86400:
        raise EdgeshadowError(f"--seconds {args.seconds}: a soak runs 10 to 86400 s", exit_code=EXIT_USAGE)
    if not 1 <= args.boards <= 20:
        raise EdgeshadowError(f"--boards {args.boards}: 1 to 20 virtual boards", exit_code=EXIT_USAGE)
    from host_tools.sim import runtimes, soak as lib
    try:
        lib.check_workdir(args.workdir)
    except EdgeshadowError as e:
        raise EdgeshadowError(f"--workdir: {e}", exit_code=EXIT_USAGE)
    if args.heap is not None:
        try:
            runtimes.parse_size(args.heap)
        except (EdgeshadowError, ValueError) as e:
            raise EdgeshadowError(f"--heap: {e}", exit_code=EXIT_USAGE)
    report = lib.run(args.workdir, args.seconds, args.boards, args.seed, args.heap, args.runtime, say)
    emit(args, report, lambda: print(lib.format_report(report)))
    return 0 if report["ok"] else 1
