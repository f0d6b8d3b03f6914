"""`edgeshadow historian`: store every device's telemetry, alerts and shadow reports in SQLite."""
import signal
import sys
import threading
import time
from pathlib import Path

from host_tools import ROOT
from host_tools.history import historian as lib
from host_tools.commands.monitor import newest_state_file
from host_tools.errors import EdgeshadowError
from host_tools.history.query import parse_span

RUN_DIR = ROOT / "run"
DB_NAME = "historian.sqlite"   # kept beside the broker's broker.json
DEFAULT_DB = RUN_DIR / "broker" / DB_NAME
DB_HELP = "historian database (default: run/broker/historian.sqlite, else the newest run/**/historian.sqlite)"


def find_db(db=None):
    """--db, else run/broker/historian.sqlite (`edgeshadow broker`), else the newest under run/
    (the demo's)."""
    if db is not None:
        return db
    if DEFAULT_DB.exists() or not RUN_DIR.is_dir():
        return DEFAULT_DB
    found = sorted(RUN_DIR.glob(f"**/{DB_NAME}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else DEFAULT_DB


def add_retention_args(p):
    p.add_argument("--keep-raw", default="7d", metavar="SPAN", help="keep raw readings this long (default 7d)")
    p.add_argument("--keep-1m", default="90d", metavar="SPAN", help="keep 1-minute rollups (default 90d)")
    p.add_argument("--keep-1h", default="730d", metavar="SPAN", help="keep hourly rollups (default 730d)")


def retention(args):
    return {"raw": parse_span(args.keep_raw), "1m": parse_span(args.keep_1m), "1h": parse_span(args.keep_1h)}


def register(sub):
    p = sub.add_parser("historian", help="store the fleet's telemetry, alerts and shadows in SQLite (until Ctrl-C)",
                       description="Subscribe to every device's telemetry, alerts, link status and shadow "
                                   "documents on the local broker (QoS 1, persistent session) and store them "
                                   "in one SQLite file with 1-minute and hourly rollups. A message is "
                                   "acknowledged only once stored, so a restart loses nothing, and a re-send "
                                   "is stored once. `edgeshadow broker` and `edgeshadow demo` run one already: start this one only "
                                   "beside `edgeshadow broker --no-historian` (both would use one client id).")
    p.add_argument("--db", type=Path, metavar="FILE",
                   help="database (default: historian.sqlite beside the broker's broker.json)")
    p.add_argument("--broker-state", type=Path, metavar="FILE",
                   help="the local broker's broker.json (default: run/broker/broker.json, else the newest run/**/broker.json)")
    add_retention_args(p)
    p.set_defaults(func=do_historian)


def _summary(s):
    return (f"{s['messages']} messages, {s['stored']} values stored, {s['values'] - s['stored']} "
            f"duplicates ignored, {s['bad']} skipped")


def do_historian(args):
    keep = retention(args)
    state = args.broker_state or newest_state_file()
    if state is None:
        raise EdgeshadowError("no running local broker found (no broker.json under run/)",
                              hint="start one with `edgeshadow broker`, or pass --broker-state FILE")
    settings = lib.historian_settings(state)
    db = args.db or state.parent / DB_NAME
    stop = threading.Event()
    old = {sig: signal.signal(sig, lambda *a: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with lib.HistoryStore(db) as store:
            with lib.Historian(settings, store, retention_s=keep) as h:
                print(f"historian: storing into {db} from {settings.describe()}; Ctrl-C stops",
                      file=sys.stderr, flush=True)
                next_report = time.monotonic() + 60
                while not stop.wait(0.5):
                    h.check()
                    if time.monotonic() >= next_report:  # progress, for a long-running service's log
                        next_report += 60
                        print(f"historian: {_summary(h.stats)}", file=sys.stderr, flush=True)
        print(f"historian: stopped; {_summary(h.stats)}", file=sys.stderr)
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
