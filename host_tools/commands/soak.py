"""`edgeshadow soak`: virtual boards against the local stack under a chaos schedule, with a report."""
import json
import sys
from pathlib import Path

from host_tools.sim import soak as lib
from host_tools.cloud.broker import RUN_DIR


def register(sub):
    p = sub.add_parser("soak", help="virtual boards under broker/board kills, Wi-Fi drops and hostile deltas",
                       description="Run N virtual boards against the local broker and shadow service for a "
                                   "set time while a seeded chaos schedule kills and restarts the broker, the "
                                   "shadow service and boards, drops Wi-Fi, corrupts spool metadata between "
                                   "boots and sends valid and hostile deltas. Prints a report (readings lost, "
                                   "duplicated, out of order; reconnect times; reboots, crashes) and exits 1 "
                                   "on any loss, crash or hostile delta applied.")
    p.add_argument("--seconds", type=int, default=600, metavar="S", help="chaos duration (default 600)")
    p.add_argument("--boards", type=int, default=5, metavar="N", help="virtual boards (default 5)")
    p.add_argument("--seed", type=int, help="schedule seed (default: random, printed in the report)")
    p.add_argument("--heap", metavar="SIZE", help="the boards' GC heap, e.g. 112000 (default with the "
                   "ESP32-like runtime: 136k, see host_tools/sim/soak.py SOAK_HEAP)")
    p.add_argument("--runtime", choices=("auto", "unix", "esp32like"), default="auto",
                   help="auto: the ESP32-like runtime when it is built (make esp32like), else unix")
    p.add_argument("--workdir", type=Path, default=RUN_DIR / "soak", metavar="DIR",
                   help=f"boards, broker, logs (default {RUN_DIR / 'soak'}; emptied first)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE ('-': stdout only JSON)")
    p.set_defaults(func=do_soak)


def do_soak(args):
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # progress on stderr
    report = lib.run(args.workdir, args.seconds, args.boards, args.seed, args.heap, args.runtime, say)
    if args.json == "-":
        print(json.dumps(report, indent=1))
    else:
        print(lib.format_report(report))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["ok"] else 1
