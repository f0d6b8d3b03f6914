"""`edgeshadow certs`: local CA, device certificates, import of AWS files, checks."""
from pathlib import Path

from host_tools import CERTS_DIR
from host_tools.cloud import certs as lib
from host_tools.errors import EXIT_FAILED, EXIT_OK
from host_tools.output import add_json_arg, emit, json_to_stdout, say


def _certs_dir_arg(p):
    p.add_argument("--certs-dir", type=Path, default=CERTS_DIR, metavar="DIR",
                   help=f"certificate folder (default: {CERTS_DIR})")


def register(sub):
    p = sub.add_parser("certs", help="local CA, device certificates, import and check",
                       description="Make, import and check device certificates under certs/.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    ca = verbs.add_parser("ca", help="the local CA (for the local broker)")
    ca_verbs = ca.add_subparsers(dest="ca_verb", metavar="VERB")
    ca_verbs.required = True
    init = ca_verbs.add_parser("init", help="create the local CA (EC P-256) under certs/ca/; an existing "
                                           "CA is kept")
    init.add_argument("--force", action="store_true", help="replace an existing CA (every certificate it "
                                                           "signed must then be issued again)")
    init.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    _certs_dir_arg(init)
    init.set_defaults(func=do_ca_init)

    dev = verbs.add_parser("device", help="key + certificate signed by the local CA, per thing; a thing's "
                                          "valid certificate is kept")
    dev.add_argument("things", nargs="+", metavar="THING")
    dev.add_argument("--force", action="store_true",
                     help="replace existing keys and certificates (the boards must be injected again)")
    dev.add_argument("--rsa", action="store_true", help="RSA-2048 key instead of EC P-256")
    dev.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    _certs_dir_arg(dev)
    dev.set_defaults(func=do_device)

    imp = verbs.add_parser("import", help="take AWS's downloaded files under our names")
    imp.add_argument("thing", metavar="THING")
    imp.add_argument("--cert", type=Path, required=True, metavar="FILE",
                     help="the <id>-certificate.pem.crt file")
    imp.add_argument("--key", type=Path, required=True, metavar="FILE", help="the <id>-private.pem.key file")
    imp.add_argument("--root-ca", type=Path, metavar="FILE",
                     help="AmazonRootCA1.pem (default: from this machine's trust store)")
    _certs_dir_arg(imp)
    imp.set_defaults(func=do_import)

    chk = verbs.add_parser("check", help="check each thing's key, certificate and root CA")
    chk.add_argument("things", nargs="+", metavar="THING")
    chk.add_argument("--root-ca", type=Path, metavar="FILE",
                     help="root CA to check against (default: certs/<thing>/root-ca.crt)")
    _certs_dir_arg(chk)
    add_json_arg(chk, "each thing's result")
    chk.set_defaults(func=do_check)


def do_ca_init(args):
    crt, made = lib.ensure_ca(args.certs_dir / "ca", days=args.days, force=args.force)
    emit(args, {"ca": str(crt), "made": made},
         f"local CA written: {crt} (key {crt.with_name('ca.key')}, mode 0600)" if made else
         f"local CA kept: {crt} exists (pass --force to replace it)")
    return EXIT_OK


def do_device(args):
    lib.check_days(args.days)
    for thing in args.things:
        lib.validate_thing(thing)
    for thing in args.things:
        crt, made = lib.ensure_device(thing, args.certs_dir / thing, args.certs_dir / "ca",
                                      key_type="rsa" if args.rsa else "ec", days=args.days, force=args.force)
        emit(args, {"thing": thing, "dir": str(crt.parent), "made": made},
             f"{thing}: {crt.parent}/ (device.crt, device.key, root-ca.crt)"
             + ("" if made else ": kept, valid (pass --force to replace)"))
    return EXIT_OK


def do_import(args):
    report = lib.import_files(args.thing, args.certs_dir / args.thing, args.cert, args.key, args.root_ca)
    emit(args, {"thing": args.thing, "dir": str(report.thing_dir), "key": report.key_type,
                "days_left": report.days_left, "warnings": report.warnings, "notes": report.notes},
         "\n".join([f"{args.thing}: imported into {report.thing_dir}/ ({report.key_type}, "
                    f"{report.days_left} days left)"] + [f"  {w}" for w in report.warnings + report.notes]))
    return EXIT_OK


def _check_doc(r):
    return {"thing": r.thing, "ok": r.ok, "key": r.key_type, "days_left": r.days_left,
            "not_after": r.not_after.isoformat() if r.not_after else None, "issuer": r.issuer,
            "problems": r.problems, "warnings": r.warnings, "notes": r.notes}


def do_check(args):
    reports = [lib.inspect(t, args.certs_dir / t, root_ca=args.root_ca) for t in args.things]
    failed = sum(1 for r in reports if r.problems)

    def show():
        from rich.console import Console
        Console().print(_check_table(reports))
        for r in reports:
            for line in r.problems:
                print(f"{r.thing}: {line}")
            for line in r.warnings:
                print(f"{r.thing}: warning: {line}")
        if failed:
            print(f"{failed} of {len(reports)} failed")

    emit(args, {"ok": not failed, "things": [_check_doc(r) for r in reports]}, show)
    if failed and json_to_stdout(args):
        say(f"{failed} of {len(reports)} failed")
    return EXIT_FAILED if failed else EXIT_OK


def _check_table(reports):
    from rich.table import Table
    table = Table(title="certificate check")
    for col in ("thing", "result", "key", "days left", "issuer"):
        table.add_column(col)
    for r in reports:
        result = "[red]FAIL[/red]" if r.problems else "[yellow]warn[/yellow]" if r.warnings else "[green]ok[/green]"
        table.add_row(r.thing, result, r.key_type or "-", "-" if r.days_left is None else str(r.days_left),
                      r.issuer or "-")
    return table
