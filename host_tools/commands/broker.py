"""`edgeshadow broker`: the local Mosquitto broker (mutual TLS) and shadow service, until Ctrl-C."""
import signal
import threading
from pathlib import Path

from host_tools import broker as lib
from host_tools.errors import EdgeshadowError


def register(sub):
    p = sub.add_parser("broker", help="run the local broker, shadow service and jobs/streams service (until Ctrl-C)",
                       description="Start Mosquitto with mutual TLS and per-thing ACLs, and the local "
                                   "AWS-style shadow service and jobs/streams service (OTA) beside it. Writes WORKDIR/broker.json so "
                                   "`edgeshadow shadow`, `monitor` and `ota` find them.")
    p.add_argument("--workdir", type=Path, default=lib.DEFAULT_WORKDIR, metavar="DIR",
                   help=f"config, logs, host certificates and shadows (default: {lib.DEFAULT_WORKDIR})")
    p.add_argument("--ca-dir", type=Path, default=lib.DEFAULT_CA_DIR, metavar="DIR",
                   help=f"local CA, created if absent (default: {lib.DEFAULT_CA_DIR})")
    p.add_argument("--port", type=int, metavar="N", help="TLS port (default: a free one)")
    p.set_defaults(func=do_broker)


def do_broker(args):
    if args.port is not None and not 0 < args.port < 65536:
        raise EdgeshadowError(f"--port {args.port} is not a TCP port (1 to 65535)")
    stop = threading.Event()
    # Ctrl-C and SIGTERM both end the run cleanly (a background job may start with SIGINT ignored)
    old = {sig: signal.signal(sig, lambda *a: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("starting Mosquitto, the shadow service and the jobs/streams service...", flush=True)
        with lib.local_stack(args.workdir, args.ca_dir, port=args.port) as (broker, service, state):
            print(f"host   {broker.host}\nport   {broker.port}\nCA     {broker.ca_cert}\n"
                  f"state  {state}\nlog    {broker.log_path}\nrunning; Ctrl-C stops", flush=True)
            while not stop.wait(0.5):
                if not broker.running:
                    raise EdgeshadowError(f"Mosquitto stopped on its own: {broker.log_tail()}")
        print("stopped", flush=True)
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
