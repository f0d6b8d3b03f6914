"""`edgeshadow shadow get|set`: read or change a thing's desired state, locally or on AWS."""
import json
from pathlib import Path

from host_tools.cloud import desired as want
from host_tools.cloud import shadow_api as lib
from host_tools.cloud.certs import validate_thing
from host_tools.errors import EXIT_FAILED, EXIT_OK, EXIT_UNTESTED, EdgeshadowError
from host_tools.output import add_json_arg, emit, say


def _common(p):
    p.add_argument("thing", metavar="THING")
    p.add_argument("--aws", action="store_true", help="AWS IoT (boto3 iot-data) instead of the local broker")
    p.add_argument("--region", help="AWS region (with --aws; default from the AWS configuration)")
    p.add_argument("--endpoint-url", metavar="URL", help="iot-data endpoint (with --aws; default boto3's)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workdir", type=Path, metavar="DIR",
                       help="the local broker's folder holding broker.json (default: run/broker, "
                            "else the newest run/**/broker.json)")
    where.add_argument("--broker-state", type=Path, metavar="FILE",
                       help="the local broker's broker.json, as `edgeshadow monitor` takes it")
    add_json_arg(p)


def register(sub):
    p = sub.add_parser("shadow", help="read or change a thing's shadow (desired state)",
                       description="Read a thing's shadow or change its desired state, on the local "
                                   "shadow service (default) or on AWS IoT (--aws).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    g = verbs.add_parser("get", help="print the shadow: desired, reported, delta, version")
    _common(g)
    g.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait for an answer (default 10)")
    g.set_defaults(func=do_get)
    s = verbs.add_parser(
        "set", help="set desired keys and wait for the board to apply or reject them",
        description="Set desired keys (key=value; a.b=value nests; key=null removes a key). A value is "
                    "JSON (5, true, null, \"text\", [1, 2], {\"a\": 1}); a plain word (pump, pool.ntp.org) "
                    "is a string; a value that starts like JSON but does not parse ({bad, [1, True, NaN) "
                    "is refused: quote such a string, k='\"{text\"'. Settings the firmware's validator "
                    "refuses are refused here, before anything is sent. Then the command waits for the "
                    "board's answer in its reported state. Exit codes: 0 applied (or stored, with "
                    "--no-wait), 1 rejected by the board (its reason is printed) or refused here, "
                    "3 no answer within --timeout (the board is offline; the desired state stays stored).")
    _common(s)
    s.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    s.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="wait this long for the shadow service and then for the board (default 10)")
    s.add_argument("--no-wait", action="store_true", help="store the desired state; do not wait for the board")
    s.set_defaults(func=do_set)


def _open(args):
    if args.timeout <= 0:
        raise EdgeshadowError(f"--timeout {args.timeout:g}: must be a number of seconds > 0")
    return lib.open_shadow(aws=args.aws, region=args.region, endpoint_url=args.endpoint_url,
                           workdir=args.broker_state.parent if args.broker_state else args.workdir,
                           timeout=args.timeout)


def do_get(args):
    validate_thing(args.thing)
    with _open(args) as shadow:
        doc = shadow.get(args.thing)
    emit(args, doc, lambda: print(json.dumps(doc, indent=2, sort_keys=True)))
    return EXIT_OK


def do_set(args):
    validate_thing(args.thing)
    desired = want.parse_assignments(args.assignments)  # before connecting: bad input changes nothing
    with _open(args) as shadow:
        reported = _reported(shadow, args.thing)
        problems = want.check(args.thing, desired, reported)
        if problems:
            raise EdgeshadowError(f"not sent to {args.thing}: the board would refuse it: " + "; ".join(problems))
        doc = shadow.set_desired(args.thing, desired)
        version = doc.get("version")
        say(f"{args.thing}: desired state stored (shadow version {version})")
        if args.no_wait or not want.for_board(desired):
            result, detail = "stored", None
        else:
            say(f"waiting up to {args.timeout:g} s for {args.thing} to apply shadow version {version}...")
            result, detail = want.wait_for_board(shadow, args.thing, desired, version, args.timeout)
    return _report(args, desired, version, result, detail)


def _reported(shadow, thing):
    try:
        return shadow.get(thing).get("state", {}).get("reported", {})
    except EdgeshadowError:  # no shadow yet: the defaults are the base
        return {}


def _report(args, desired, version, result, detail):
    thing = args.thing
    doc = {"thing": thing, "version": version, "desired": desired, "result": result,
           "problems": detail if result == "rejected" else []}
    text = {"applied": f"{thing}: applied shadow version {version}",
            "stored": f"{thing}: stored shadow version {version} (not waiting for the board)"}.get(result)
    emit(args, doc, text)
    if result == "rejected":
        raise EdgeshadowError(f"{thing} rejected shadow version {version}: " + "; ".join(detail),
                              hint="nothing was applied; the desired state stays until changed",
                              exit_code=EXIT_FAILED)
    if result == "no answer":
        raise EdgeshadowError(f"no answer from {thing} within {args.timeout:g} s (is it offline?); the desired "
                              f"state is stored (shadow version {version}) and the board applies it when it "
                              f"connects: `edgeshadow shadow get {thing}` shows it", exit_code=EXIT_UNTESTED)
    return EXIT_OK
