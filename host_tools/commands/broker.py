"""`edgeshadow broker`: the local Mosquitto broker (mutual TLS) and shadow service, until Ctrl-C."""
import contextlib
import signal
import threading
from pathlib import Path

from host_tools.cloud import broker as lib
from host_tools.commands.historian import DB_NAME, add_retention_args, retention
from host_tools.errors import EdgeshadowError
from host_tools.output import say


def register(sub):
    p = sub.add_parser("broker", help="run the local broker, shadow service and jobs/streams service (until Ctrl-C)",
                       description="Start Mosquitto with mutual TLS and per-thing ACLs, and the local "
                                   "AWS-style shadow service and jobs/streams service (OTA) beside it, and the "
                                   "historian (`edgeshadow historian`). Writes WORKDIR/broker.json so "
                                   "`edgeshadow shadow`, `monitor`, `ota` and `historian` find them.")
    p.add_argument("--workdir", type=Path, default=lib.DEFAULT_WORKDIR, metavar="DIR",
                   help=f"config, logs, host certificates and shadows (default: {lib.DEFAULT_WORKDIR})")
    p.add_argument("--ca-dir", type=Path, default=lib.DEFAULT_CA_DIR, metavar="DIR",
                   help=f"local CA, created if absent (default: {lib.DEFAULT_CA_DIR})")
    p.add_argument("--port", type=int, metavar="N", help="TLS port (default: a free one)")
    p.add_argument("--db", type=Path, metavar="FILE",
                   help=f"the historian's database (default WORKDIR/{DB_NAME})")
    p.add_argument("--no-historian", action="store_true",
                   help="do not store the fleet's data (run `edgeshadow historian` separately instead)")
    add_retention_args(p)
    p.set_defaults(func=do_broker)


def do_broker(args):
    if args.port is not None and not 0 < args.port < 65536:
        raise EdgeshadowError(f"--port {args.port} is not a TCP port (1 to 65535)")
    stop = threading.Event()
    # Ctrl-C and SIGTERM both end the run cleanly (a background job may start with SIGINT ignored)
    old = {sig: signal.signal(sig, lambda *a: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        say("starting Mosquitto, the shadow service and the jobs/streams service...")
        keep = retention(args)
        db = args.db or args.workdir / DB_NAME
        with lib.local_stack(args.workdir, args.ca_dir, port=args.port) as (broker, service, state):
            with contextlib.ExitStack() as extra:
                hist = None
                if not args.no_historian:
                    from host_tools.history.historian import running
                    hist = extra.enter_context(running(state, db, retention_s=keep))
                print(f"host   {broker.host}\nport   {broker.port}\nCA     {broker.ca_cert}\n"
                      f"state  {state}\nlog    {broker.log_path}\n"
                      f"history {'off' if hist is None else db}", flush=True)
                say("running; Ctrl-C stops")
                while not stop.wait(0.5):
                    if not broker.running:
                        raise EdgeshadowError(f"Mosquitto stopped on its own: {broker.log_tail()}")
                    if hist is not None:
                        hist.check()
        say("stopped")
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
