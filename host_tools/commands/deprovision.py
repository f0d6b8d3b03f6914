"""`edgeshadow deprovision aws THING...`: detach and delete things and their certificates in AWS IoT."""
from host_tools.cloud import provision as lib
from host_tools.commands.provision import add_fleet_args, collect_things, run_with_progress


def register(sub):
    p = sub.add_parser("deprovision", help="detach and delete things and their certificates in AWS IoT",
                       description="Undo `edgeshadow provision`. Only `aws` exists.")
    clouds = p.add_subparsers(dest="cloud", metavar="CLOUD")
    clouds.required = True
    a = clouds.add_parser("aws", help="AWS IoT Core",
                          description="Per thing: detach policies and the certificate, deactivate and delete "
                                      "the certificate, delete the thing, and remove device.key, device.crt "
                                      "and aws.json here. The shared policy is deleted once nothing uses it.")
    add_fleet_args(a)
    a.add_argument("--keep-policy", action="store_true", help="keep the device policy even if unused")
    a.set_defaults(func=do_aws)


def do_aws(args):
    things = collect_things(args)
    aws = lib.AwsIot(region=args.region)
    return run_with_progress(things, lambda t: lib.deprovision_thing(
        aws, t, args.certs_dir / t, delete_policy=not args.keep_policy), "deprovision", args)
