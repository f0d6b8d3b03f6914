"""`edgeshadow history THING`: export what the historian stored for one device."""
import csv
import sys
import time
from pathlib import Path

from host_tools.history import query as lib
from host_tools.commands.historian import DB_HELP, find_db
from host_tools.errors import EdgeshadowError
from host_tools.output import emit, say
from host_tools.history.store import HistoryStore


def register(sub):
    p = sub.add_parser("history", help="export a device's stored readings (or rollups) as text, CSV or JSON",
                       description="Print what the historian stored for THING: raw readings by default, or "
                                   "1-minute/hourly rollups (min, mean, max, count) with --resolution. "
                                   "Exit codes: 0 ok (also when the window is empty), 1 unknown thing or "
                                   "metric, bad time, no database; 2 usage.")
    p.add_argument("thing")
    p.add_argument("--metric", metavar="M", help="one metric (default: all; rollups need one)")
    p.add_argument("--since", default="1h", metavar="WHEN",
                   help="start: a span back from now (15m, 1h, 30d) or an ISO time (default 1h)")
    p.add_argument("--until", metavar="WHEN", help="end: a span back from now or an ISO time (default now)")
    p.add_argument("--resolution", choices=("raw", "1m", "1h"), default="raw",
                   help="raw readings (default) or a rollup")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    fmt.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                     help="a JSON array of objects: on stdout (`--json` or `--json -`) or in FILE")
    p.add_argument("--db", type=Path, metavar="FILE", help=DB_HELP)
    p.set_defaults(func=do_history)


def rows_of(store, args, now):
    since = lib.parse_time(args.since, now, "--since")
    until = lib.parse_time(args.until, now, "--until") if args.until else now
    if until < since:
        raise EdgeshadowError(f"--until {args.until} is before --since {args.since}")
    if args.resolution == "raw":
        cols = ("time", "ts", "seq", "metric", "value", "status")
        return cols, [(lib.iso(ts), ts, seq, m, v, st)
                      for ts, seq, m, v, st in lib.readings(store, args.thing, args.metric, since, until)]
    if not args.metric:
        raise EdgeshadowError(f"--resolution {args.resolution} needs --metric "
                              f"(one of: {', '.join(lib.metrics_of(store, args.thing)) or 'none stored'})")
    s = lib.series(store, args.thing, args.metric, since, until, args.resolution)
    cols = ("time", "ts", "metric", "min", "mean", "max", "count")
    return cols, [(lib.iso(t), t, args.metric, lo, v, hi, n)
                  for t, v, lo, hi, n in zip(s["t"], s["v"], s["min"], s["max"], s["n"])]


def do_history(args):
    with HistoryStore(find_db(args.db), readonly=True) as store:
        cols, rows = rows_of(store, args, time.time())
    if args.json:
        emit(args, [dict(zip(cols, r)) for r in rows])
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
    else:
        for r in rows:
            print("  ".join("" if x is None else str(x) for x in r))
    say(f"{len(rows)} row(s) for {args.thing}")
    return 0
