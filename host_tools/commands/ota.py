"""`edgeshadow ota keygen|build|push|status`: signed over-the-air app updates through AWS IoT Jobs
(the local jobs/streams service of `edgeshadow broker`)."""
import time
from pathlib import Path

from host_tools import FIRMWARE_DIR
from host_tools.cloud import ota as lib
from host_tools.errors import EdgeshadowError
from host_tools.output import add_json_arg, emit, say

TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")


def _where(p):
    p.add_argument("--aws", action="store_true", help="AWS IoT (boto3) instead of the local broker")
    p.add_argument("--region", help="AWS region (with --aws; default from the AWS configuration)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workdir", type=Path, metavar="DIR",
                       help="the local broker's folder holding broker.json (default: run/broker, "
                            "else the newest run/**/broker.json)")
    where.add_argument("--broker-state", type=Path, metavar="FILE", help="the local broker's broker.json")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="wait for an answer (default 30)")


def register(sub):
    p = sub.add_parser("ota", help="signed over-the-air updates (keygen, build, push, status)",
                       description="Build signed app bundles and roll them out over AWS IoT Jobs and "
                                   "MQTT-based file delivery (the local broker's jobs/streams service).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    k = verbs.add_parser("keygen", help="make the P-256 signing key (private key stays on this host)")
    k.add_argument("--out", type=Path, default=lib.KEY_DIR, metavar="DIR", help=f"default {lib.KEY_DIR}")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(func=do_keygen)
    _build_parser(verbs)
    u = verbs.add_parser("push", help="create a job (and its stream) for things")
    u.add_argument("bundle", type=Path, metavar="BUNDLE")
    u.add_argument("things", nargs="*", metavar="THING")
    u.add_argument("--all", action="store_true", help="every thing with a shadow on the local service")
    u.add_argument("--pub", type=Path, metavar="PUB",
                   help="check the bundle's signature against this public key first (default: "
                        f"{lib.KEY_DIR / lib.PUB_NAME} if it exists)")
    u.add_argument("--rollout", metavar="N%|N", help="boards updating at once: a share or a count")
    u.add_argument("--abort-after", type=int, metavar="K", help="cancel the job after K failures")
    u.add_argument("--job-id", help="job id (default: ota-<version>-<random>)")
    u.add_argument("--bucket", help="with --aws: S3 bucket for the bundle's files")
    u.add_argument("--role-arn", help="with --aws: IAM role AWS IoT assumes to read the bucket (streams)")
    u.add_argument("--wait", action="store_true", help="wait until every execution ended; exit 1 unless all SUCCEEDED")
    u.add_argument("--wait-timeout", type=float, default=900, metavar="S")
    add_json_arg(u)
    _where(u)
    u.set_defaults(func=do_push)
    s = verbs.add_parser("status", help="jobs and each device's execution state")
    s.add_argument("job", nargs="?", metavar="JOB", help="one job (default: all)")
    add_json_arg(s, "the jobs")
    _where(s)
    s.set_defaults(func=do_status)


def _build_parser(verbs):
    b = verbs.add_parser("build", help="sign the firmware's app files into a bundle")
    b.add_argument("--firmware-dir", type=Path, default=FIRMWARE_DIR, metavar="DIR")
    b.add_argument("--key", type=Path, default=lib.KEY_DIR / lib.KEY_NAME, metavar="KEY")
    b.add_argument("--mpy", metavar="ARCH", help="compile to .mpy for this arch (xtensawin, rv32imc, x64)")
    b.add_argument("--image", type=Path, metavar="F.bin",
                   help="sign a MicroPython image (for boards with OTA partitions) instead of the app")
    b.add_argument("--board", metavar="NAME",
                   help="with --image: check the image against this board; else: a board with a ROMFS "
                        "partition (romfs_size) gets a --romfs bundle compiled for its mpy_arch")
    b.add_argument("--romfs", action="store_true",
                   help="the app as one ROMFS image, for boards with a ROMFS partition (they run it in "
                        "place from flash: about 80 KB of heap where files need 112 KB or more)")
    b.add_argument("--version", help="version to name in the manifest (default: edge.VERSION)")
    b.add_argument("--trial-s", type=int, metavar="S",
                   help="seconds the new app gets to connect and report before the board rolls it "
                        "back (default 300)")
    b.add_argument("-o", "--out", type=Path, required=True, metavar="FILE")
    add_json_arg(b)
    b.set_defaults(func=do_build)


def _jobs(args):
    workdir = args.broker_state.parent if args.broker_state else args.workdir
    return lib.LocalJobs.from_state(workdir, args.timeout)


def do_keygen(args):
    key, pub = lib.keygen(args.out, args.force)
    print(f"private key {key} (keep it on this host)\npublic key  {pub} "
          f"(put it on boards: edgeshadow inject --ota-key {pub})")
    return 0


def do_build(args):
    if args.image:
        b = lib.build_image(args.image, args.key, args.out, board=args.board, version=args.version)
        m = b.manifest
        out = {"bundle": str(args.out), "kind": "image", "version": m["version"], "seq": m["seq"],
               "chip": m["chip"], "bytes": m["size"]}
        emit(args, out, f"{args.out}: {m['chip']} image {m['version']} (seq {m['seq']}), {m['size']} bytes, signed")
        return 0
    romfs, arch = args.romfs, args.mpy
    if args.board:
        from host_tools.device.boards import load_board
        board = load_board(args.board)
        romfs = romfs or bool(board.get("romfs_size"))
        arch = arch or (board.get("mpy_arch") if romfs else None)
    b = lib.build(args.firmware_dir, args.key, args.out, mpy_arch=arch, version=args.version,
                  trial_s=args.trial_s, romfs=romfs)
    m = b.manifest
    out = {"bundle": str(args.out), "kind": m["kind"], "version": m["version"], "seq": m["seq"],
           "files": len(m["files"]), "bytes": m["size"], "mpy_arch": m["mpy_arch"]}
    what = "ROMFS image" if romfs else f"{len(m['files'])} files"
    emit(args, out, f"{args.out}: app {m['version']} (seq {m['seq']}), {what}, {m['size']} bytes, signed")
    return 0


def _all_things(args):
    from host_tools.cloud.broker import find_state
    state = args.broker_state or find_state(args.workdir)
    shadows = Path(state).parent / "shadows"
    return sorted(p.stem for p in shadows.glob("*.json"))


def do_push(args):
    if bool(args.things) == bool(args.all):
        raise EdgeshadowError("name the things to update, or pass --all (not both)")
    bundle = lib.read_bundle(args.bundle)
    pub = args.pub or (lib.KEY_DIR / lib.PUB_NAME if (lib.KEY_DIR / lib.PUB_NAME).exists() else None)
    if pub:
        lib.verify(pub, bundle.manifest_text, bundle.signature)
    if args.aws:
        if args.all:
            raise EdgeshadowError("--all works with the local service; with --aws name the things")
        import uuid
        from host_tools.cloud import ota_aws
        s3, iot = ota_aws.clients(args.region)
        job_id = args.job_id or f"ota-{bundle.version.replace('.', '_')}-{uuid.uuid4().hex[:8]}"
        out = ota_aws.push_aws(bundle, args.things, args.bucket, args.role_arn, job_id, s3, iot,
                               rollout=args.rollout, abort_after=args.abort_after)
        emit(args, out, out["jobId"])
        return 0
    things = args.things or _all_things(args)
    if not things:
        raise EdgeshadowError("--all found no thing with a shadow on the local service")
    with _jobs(args) as jobs:
        job = lib.push_local(jobs, bundle, things, args.job_id, args.rollout, args.abort_after)
        say(f"job {job}: app {bundle.version} to {len(things)} thing(s)")
        if not args.wait:
            emit(args, {"job": job, "things": things}, job)
            return 0
        deadline = time.monotonic() + args.wait_timeout
        seen = {}
        while True:
            j = next(x for x in jobs.list_jobs() if x["jobId"] == job)
            for t, e in j["executions"].items():
                if seen.get(t) != e["status"]:
                    seen[t] = e["status"]
                    say(f"{t}: {e['status']} {e['statusDetails'].get('reason', '')}".rstrip())
            if all(s in TERMINAL for s in seen.values()):
                break
            if time.monotonic() > deadline:
                raise EdgeshadowError(f"job {job} had not ended after {args.wait_timeout:.0f} s: {j['counts']}")
            time.sleep(0.5)
    ok = all(s == "SUCCEEDED" for s in seen.values())
    emit(args, {"job": job, "status": j["status"], "executions": seen},
         f"job {job}: {j['status']}, " + ", ".join(f"{n} {s}" for s, n in sorted(j["counts"].items())))
    return 0 if ok else 1


def do_status(args):
    if args.aws:
        if not args.job:
            raise EdgeshadowError("with --aws name the job (edgeshadow ota status JOB --aws)")
        from host_tools.cloud import ota_aws
        listed = [ota_aws.status_aws(ota_aws.clients(args.region)[1], args.job)]
    else:
        with _jobs(args) as jobs:
            listed = jobs.list_jobs()
    if args.job:
        listed = [j for j in listed if j["jobId"] == args.job]
        if not listed:
            raise EdgeshadowError(f"no job {args.job} on the local jobs service")
    emit(args, listed, lambda: _print_jobs(listed))
    return 0


def _print_jobs(listed):
    for j in listed:
        print(f"{j['jobId']}  {j['status']}{'  ' + j['reasonCode'] if j['reasonCode'] else ''}  " +
              ", ".join(f"{n} {s}" for s, n in sorted(j["counts"].items())))
        for t, e in sorted(j["executions"].items()):
            d = e["statusDetails"]
            print(f"  {t:<24} {e['status']:<12} {d.get('version', '')} {d.get('step', '')} {d.get('reason', '')}".rstrip())
