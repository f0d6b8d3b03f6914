"""`edgeshadow provision aws THING... [--csv FILE]`: register things in AWS IoT with a key made here."""
from pathlib import Path

from host_tools import CERTS_DIR
from host_tools.cloud import certs
from host_tools.cloud import provision as lib
from host_tools.errors import EXIT_FAILED, EXIT_OK, EdgeshadowError
from host_tools.output import Progress, add_json_arg, emit, json_to_stdout, say


def add_fleet_args(p):
    p.add_argument("things", nargs="*", metavar="THING", help="thing names")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="CSV of thing names (a `thing` column, or the first column)")
    p.add_argument("--region", help="AWS region (default: AWS_REGION / ~/.aws/config)")
    p.add_argument("--certs-dir", type=Path, default=CERTS_DIR, metavar="DIR",
                   help=f"certificate folder (default: {CERTS_DIR})")
    add_json_arg(p, "each thing's result")


def register(sub):
    p = sub.add_parser("provision", help="register things in AWS IoT (key made locally, CSR signed by AWS)",
                       description="Provision things in a cloud. Only `aws` exists.")
    clouds = p.add_subparsers(dest="cloud", metavar="CLOUD")
    clouds.required = True
    a = clouds.add_parser("aws", help="AWS IoT Core",
                          description="Per thing: key + CSR here, certificate signed and activated by AWS, "
                                      "thing created if absent, least-privilege policy attached, ATS endpoint "
                                      "written into certs/<thing>/config.json. Re-running skips finished things.")
    add_fleet_args(a)
    a.add_argument("--policy", default=lib.DEFAULT_POLICY, metavar="NAME",
                   help=f"name of the device policy to create or reuse (default {lib.DEFAULT_POLICY})")
    a.add_argument("--root-ca", type=Path, metavar="FILE",
                   help="AmazonRootCA1.pem (default: from this machine's trust store, pinned by SHA-256)")
    a.add_argument("--config", type=Path, metavar="FILE",
                   help="device config to write the endpoint into (one thing only; "
                        "default certs/<thing>/config.json)")
    a.add_argument("--replace", action="store_true",
                   help="replace a certificate already in certs/<thing>/ (e.g. one from the local CA)")
    a.set_defaults(func=do_aws)


def collect_things(args):
    things = list(args.things)
    for t in things:
        certs.validate_thing(t)
    if args.csv:
        things += [t for t in lib.read_things_csv(args.csv) if t not in things]
    if not things:
        raise EdgeshadowError("no things given: name them (THING...) or pass --csv FILE")
    return things


def run_with_progress(things, fn, verb, args=None):
    """fn(thing) for each thing with a progress bar on stderr; the results as a table (or --json)."""
    with Progress(verb, total=len(things), unit="things") as bar:
        results = lib.run_fleet(fn, things, progress=lambda r: bar.advance(1, f"{r.thing}: {r.status}"))
    failed = [r for r in results if r.status == "failed"]
    doc = {"ok": not failed, "things": [{"thing": r.thing, "result": r.status, "detail": r.detail}
                                        for r in results]}

    def show():
        from rich.console import Console
        Console().print(_results_table(results, verb))
        for r in failed:
            print(f"{r.thing}: {r.detail}")
        if failed:
            print(_failed_line(failed, results))

    emit(args, doc, show)
    if failed and json_to_stdout(args):
        say(_failed_line(failed, results))
    return EXIT_FAILED if failed else EXIT_OK


def _failed_line(failed, results):
    return f"{len(failed)} of {len(results)} failed; fix them and re-run (finished things are skipped)"


def _results_table(results, verb):
    from rich.table import Table
    table = Table(title=f"{verb}: {len(results)} thing(s)")
    for col in ("thing", "result", "detail"):
        table.add_column(col, overflow="fold")
    colour = {"failed": "red", "skipped": "yellow", "absent": "yellow"}
    for r in results:
        c = colour.get(r.status, "green")
        table.add_row(r.thing, f"[{c}]{r.status}[/{c}]", r.detail)
    return table


def do_aws(args):
    things = collect_things(args)
    if args.config and len(things) > 1:
        raise EdgeshadowError("--config takes one thing; for a fleet each thing's config goes to "
                              "certs/<thing>/config.json")
    root_pem = certs.load_cert(args.root_ca) if args.root_ca else None
    if root_pem is not None:
        from cryptography.hazmat.primitives import serialization
        root_pem = root_pem.public_bytes(serialization.Encoding.PEM)
    else:
        root_pem = certs.amazon_root_ca1_pem()
    aws = lib.AwsIot(region=args.region)
    return run_with_progress(things, lambda t: lib.provision_thing(
        aws, t, args.certs_dir / t, root_pem, policy=args.policy, config=args.config,
        replace=args.replace), "provision", args)
