"""`edgeshadow monitor`: live view of every device on the local broker or AWS IoT."""
from pathlib import Path

from host_tools import ROOT

from host_tools.cloud import broker
from host_tools.cloud import monitor as lib
from host_tools.errors import EXIT_FAILED, EXIT_OK, EdgeshadowError
from host_tools.output import add_json_arg, emit, say, wants_json

RUN_DIR = ROOT / "run"


def register(sub):
    p = sub.add_parser(
        "monitor", help="live fleet view: values, alerts, diagnoses, connection, spool",
        description="Live view of every device: last reported values with units, active alerts by "
                    "severity, diagnoses, connection state, spool backlog/dropped and last-seen age. "
                    "Exit codes: 0 ok; 1 error (cannot connect, bad flags) or, with --once, no device "
                    "heard within --seconds; 2 usage.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true",
                       help="the local Mosquitto broker (default): found from its broker.json")
    where.add_argument("--aws", action="store_true",
                       help="AWS IoT Core: needs --endpoint, --cert, --key, --ca")
    p.add_argument("--broker-state", type=Path, metavar="FILE",
                   help="the local broker's state file (default: run/broker/broker.json, else the "
                        "newest run/**/broker.json)")
    p.add_argument("--host", help="broker host (overrides the state file)")
    p.add_argument("--port", type=int, help="broker port (overrides the state file)")
    p.add_argument("--endpoint", help="AWS IoT data endpoint (xxxx-ats.iot.<region>.amazonaws.com)")
    p.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate (PEM) of the broker")
    p.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (PEM)")
    p.add_argument("--key", type=Path, metavar="FILE", help="client private key (PEM)")
    p.add_argument("--client-id", help="MQTT client id (default: edgeshadow-monitor-<n>)")
    p.add_argument("--prefix", default="dt", help="telemetry topic prefix (default: dt)")
    p.add_argument("--once", action="store_true",
                   help="wait until devices are heard, print one snapshot and exit")
    add_json_arg(p, "with --once: the snapshot")
    p.add_argument("--wide", action="store_true",
                   help="the detailed table (every metric, alerts, diagnoses, spool, heap) instead of one "
                        "line per device")
    p.add_argument("--seconds", type=float, metavar="N",
                   help="stop after N seconds (with --once: the longest wait, default 30)")
    p.add_argument("--expect", type=int, metavar="N",
                   help="with --once: done as soon as N devices have reported values")
    p.add_argument("--settle", type=float, default=2.0, metavar="S",
                   help="with --once and no --expect: done when no new device or value came for S "
                        "seconds (default 2)")
    p.add_argument("--stale-after", type=float, default=120.0, metavar="S",
                   help="a device not heard for S seconds counts as offline unless it said otherwise "
                        "(default 120)")
    p.set_defaults(func=do_monitor)


def newest_state_file(run_dir=RUN_DIR):
    """The local broker's state file: run/broker/broker.json here or in the checkout, else the
    newest run/**/broker.json (the demo's)."""
    for p in (broker.DEFAULT_WORKDIR / broker.STATE_FILE, ROOT / broker.DEFAULT_WORKDIR / broker.STATE_FILE):
        if p.is_file():
            return p
    found = sorted(run_dir.glob("**/broker.json"), key=lambda p: p.stat().st_mtime) if run_dir.is_dir() else []
    return found[-1] if found else None


def _settings(args):
    if args.aws:
        return lib.aws_settings(args.endpoint, args.cert, args.key, args.ca,
                                port=args.port or 8883, client_id=args.client_id)
    if args.endpoint:
        raise EdgeshadowError("--endpoint is for --aws; the local broker takes --host/--port")
    state = args.broker_state
    if state is None and args.port is None:
        state = newest_state_file()
        if state is None:
            raise EdgeshadowError(f"no running local broker found (no broker.json under {RUN_DIR})",
                                  hint="start one with `edgeshadow demo`, or pass --broker-state FILE "
                                       "or --host/--port/--ca/--cert/--key")
    s = lib.local_settings(state, host=args.host, port=args.port, ca=args.ca, cert=args.cert, key=args.key)
    if args.client_id:
        s.client_id = args.client_id
    return s


def do_monitor(args):
    if wants_json(args) and not args.once:
        raise EdgeshadowError("--json prints one snapshot: use it with --once")
    if args.expect is not None and args.expect < 1:
        raise EdgeshadowError("--expect must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise EdgeshadowError("--seconds must be > 0")
    settings = _settings(args)
    fleet = lib.Fleet(stale_after_s=args.stale_after, prefix=args.prefix)
    if not args.once:
        say(f"listening on {settings.describe()}... (Ctrl-C leaves)")
        try:
            lib.watch_live(settings, seconds=args.seconds, aws=args.aws, fleet=fleet, wide=args.wide)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a person leaves the live view
        return EXIT_OK
    say(f"listening on {settings.describe()} for up to {args.seconds or 30.0:g} s...")
    snap, complete = lib.watch_once(settings, seconds=args.seconds or 30.0, expect=args.expect,
                                    settle_s=args.settle, aws=args.aws, fleet=fleet)

    def show():
        from rich.console import Console
        Console().print(lib.render(snap, settings.describe(), wide=args.wide))

    emit(args, snap, show)
    if not snap["devices"]:
        say("edgeshadow: no device heard within the wait")
        return EXIT_FAILED
    if not complete:
        say(f"edgeshadow: warning: heard {len(snap['devices'])} device(s), fewer than expected")
        return EXIT_FAILED
    return EXIT_OK
