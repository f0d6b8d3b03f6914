"""`edgeshadow dashboard`: the live web page over the historian's file, on 127.0.0.1."""
import signal
import sys
import threading
from pathlib import Path

from host_tools.history import dashboard as lib
from host_tools.commands.historian import DB_HELP, find_db


def register(sub):
    p = sub.add_parser("dashboard", help="serve the live fleet dashboard on 127.0.0.1 (until Ctrl-C)",
                       description="Serve a read-only web page over the historian's database: the fleet at "
                                   "a glance and, per device, plots of every metric with its limits and "
                                   "alert spans, from 15 minutes to 30 days, updating live. Needs no internet. "
                                   "Prints the URL on stdout.")
    p.add_argument("--db", type=Path, metavar="FILE", help=DB_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; another needs "
                                                       "--allow-remote and --token)")
    p.add_argument("--port", type=int, default=0, metavar="N", help="TCP port (default: a free one)")
    p.add_argument("--allow-remote", action="store_true", help="allow binding to a non-loopback address")
    p.add_argument("--token", help="require this token on every request (?token= in the URL)")
    p.add_argument("--config", type=Path, default=lib.DEFAULT_CONFIG, metavar="FILE",
                   help="device config whose range and rating limits the plots draw "
                        f"(default {lib.DEFAULT_CONFIG.name})")
    p.set_defaults(func=do_dashboard)


def do_dashboard(args):
    stop = threading.Event()
    old = {sig: signal.signal(sig, lambda *a: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        db = find_db(args.db)
        with lib.Dashboard(db, host=args.host, port=args.port, token=args.token,
                           allow_remote=args.allow_remote, config=args.config) as d:
            print(d.url, flush=True)
            if not Path(db).exists():
                print(f"dashboard: warning: no historian database at {db} yet; the page stays empty "
                      "until `edgeshadow historian` (or `edgeshadow broker`, or the demo) writes it there",
                      file=sys.stderr, flush=True)
            print(f"dashboard: serving {db}; Ctrl-C stops", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
