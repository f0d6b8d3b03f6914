"""`edgeshadow cloud plan|deploy|destroy`: the historian and alerts on AWS (IoT rules, Timestream, SNS)."""
import json
from pathlib import Path

from host_tools import ROOT
from host_tools.history import aws as lib
from host_tools.history.dashboard import DEFAULT_CONFIG, load_limits
from host_tools.errors import EdgeshadowError
from host_tools.output import add_json_arg, emit, say

DEFAULT_GRAFANA = ROOT / "run" / "cloud" / "grafana-dashboard.json"


def register(sub):
    p = sub.add_parser("cloud", help="IoT rules into Timestream, critical alerts to SNS, a Grafana dashboard",
                       description="What the local historian and dashboard do, on AWS: IoT topic rules on the "
                                   "devices' telemetry, alerts and shadow documents into Amazon Timestream, "
                                   "critical alerts to an SNS topic, least-privilege IAM roles, and a Grafana "
                                   "dashboard JSON with the local page's panels. `plan` prints what `deploy` "
                                   "creates; `deploy` creates what is missing; `destroy` removes it.")
    p.add_argument("action", choices=("plan", "deploy", "destroy"))
    p.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION / the profile's)")
    p.add_argument("--name", default="edgeshadow", help="name of the database and prefix of every resource")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                   help="device config: its metrics and limits shape the rules and the Grafana panels")
    p.add_argument("--grafana-out", type=Path, default=DEFAULT_GRAFANA, metavar="FILE",
                   help=f"where deploy (and plan) write the Grafana dashboard (default {DEFAULT_GRAFANA})")
    add_json_arg(p, "the plan or the results")
    p.set_defaults(func=do_cloud)


def _metrics(config):
    try:
        return sorted(json.loads(config.read_text())["metrics"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgeshadowError(f"device config {config}: cannot read its metrics ({e})")


def do_cloud(args):
    metrics = _metrics(args.config)
    if args.action == "plan":
        resources = lib.plan(args.name, metrics, region=args.region or "<region>", account="<account>")
        emit(args, resources, "\n".join(lib.describe(resources)))
        return 0
    aws = lib.Aws(args.region)
    resources = lib.plan(args.name, metrics, region=aws.region, account=aws.account())
    if args.action == "deploy":
        done = lib.deploy(aws, resources, progress=say)
        args.grafana_out.parent.mkdir(parents=True, exist_ok=True)
        dash = lib.grafana(args.name, metrics, load_limits(args.config))
        args.grafana_out.write_text(json.dumps(dash, indent=1) + "\n")
        say(f"Grafana dashboard: {args.grafana_out} (import it with a Timestream data source)")
    else:
        done = lib.destroy(aws, resources, progress=say)
    emit(args, [{"kind": k, "name": n, "state": s} for k, n, s in done],
         "\n".join(f"{s:8} {k} {n}" for k, n, s in done))
    return 0
