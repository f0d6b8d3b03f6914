"""`edgeshadow demo`: local broker, shadow service and virtual boards with a live monitor."""
from pathlib import Path

from host_tools import CERTS_DIR
from host_tools import demo as lib
from host_tools.commands.sim import add_runtime_args
from host_tools.output import say


def register(sub):
    p = sub.add_parser("demo", help="the whole product on one machine (Ctrl-C stops everything)",
                       description="Start the local broker (Mosquitto, mutual TLS) and shadow service, "
                                   "make certificates for N virtual boards, inject them, run the boards "
                                   "with the reference smart-grid scenario and occasional anomalies, and "
                                   "show the fleet live. Ctrl-C stops every process it started.")
    p.add_argument("--devices", type=int, default=3, metavar="N", help="virtual boards (default 3)")
    p.add_argument("--interval", type=float, default=5, metavar="S",
                   help="sampling interval of the boards in seconds (default 5)")
    p.add_argument("--scenario", default="demo", help="simulation scenario (default demo: the reference smart-grid "
                   "draws with a voltage sag in the first minute; the files in host_tools/sim/scenarios/)")
    p.add_argument("--workdir", type=Path, default=lib.DEFAULT_WORKDIR, metavar="DIR",
                   help=f"boards, broker state and logs (default {lib.DEFAULT_WORKDIR})")
    p.add_argument("--certs-dir", type=Path, default=CERTS_DIR, metavar="DIR",
                   help=f"local CA and device certificates (default {CERTS_DIR})")
    p.add_argument("--headless", action="store_true",
                   help="no live view: run until Ctrl-C/SIGTERM (use `edgeshadow monitor --once --json`)")
    p.add_argument("--seconds", type=float, metavar="N", help="stop by itself after N seconds")
    p.add_argument("--ota-after", type=float, metavar="S",
                   help="after S seconds, roll a signed over-the-air update (this firmware as "
                        "<version>-ota) across the boards, one at a time (best with --headless)")
    add_runtime_args(p)
    p.set_defaults(func=do_demo)


def do_demo(args):
    from host_tools.locks import folder_lock  # one demo per folder: its broker.json, its boards
    lib.check_arguments(args.devices, args.interval)  # before the folder is made and locked
    with folder_lock(args.workdir, "demo folder"):
        return lib.run(devices=args.devices, workdir=args.workdir, certs_dir=args.certs_dir,
                       interval_s=args.interval, scenario=args.scenario, headless=args.headless,
                       seconds=args.seconds, say=say,
                       runtime=args.runtime, heap=args.heap, ota_after=args.ota_after)
