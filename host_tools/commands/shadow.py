"""`edgeshadow shadow get|set`: read or change a thing's desired state, locally or on AWS."""
import json
from pathlib import Path

from host_tools.cloud import shadow_api as lib


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
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait for an answer (default 10)")


def register(sub):
    p = sub.add_parser("shadow", help="read or change a thing's shadow (desired state)",
                       description="Read a thing's shadow or change its desired state, on the local "
                                   "shadow service (default) or on AWS IoT (--aws).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    g = verbs.add_parser("get", help="print the shadow: desired, reported, delta, version")
    _common(g)
    g.set_defaults(func=do_get)
    s = verbs.add_parser("set", help="set desired keys: key=value (JSON or a string; a.b=value nests; "
                                     "key=null removes)")
    _common(s)
    s.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    s.set_defaults(func=do_set)


def _open(args):
    return lib.open_shadow(aws=args.aws, region=args.region, endpoint_url=args.endpoint_url,
                           workdir=args.broker_state.parent if args.broker_state else args.workdir,
                           timeout=args.timeout)


def do_get(args):
    with _open(args) as shadow:
        doc = shadow.get(args.thing)
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


def do_set(args):
    desired = lib.parse_assignments(args.assignments)  # before connecting: bad input changes nothing
    with _open(args) as shadow:
        doc = shadow.set_desired(args.thing, desired)
    print(f"{args.thing}: desired updated, shadow version {doc.get('version')}")
    print(json.dumps(doc.get("state", {}), indent=2, sort_keys=True))
    return 0
