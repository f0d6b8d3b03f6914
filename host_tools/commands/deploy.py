"""`edgeshadow deploy`: copy the firmware to a board, sending only what changed."""
from host_tools import FIRMWARE_DIR


def register(sub):
    p = sub.add_parser(
        "deploy", help="copy firmware/ to a board over one connection, only what changed",
        description="Send the firmware files whose SHA-256 differs from the board's, remove files "
                    "the firmware no longer has (never /certs, /config.json, /board.json, /spool), "
                    "upload the device config atomically, soft-reset and confirm the firmware's "
                    "version banner. Exit code 0 only when the board booted the deployed version.")
    p.add_argument("--port", required=True, help="serial port of the board (or a virtual board's pty)")
    p.add_argument("--config", metavar="FILE", help="device config to upload as /config.json")
    p.add_argument("--mpy", action="store_true",
                   help="compile modules with mpy-cross for the board's architecture, send .mpy")
    p.add_argument("--board", metavar="NAME",
                   help="board definition: written as /board.json, gives the --mpy architecture "
                        "(default: the config's \"board\", else the board's own /board.json)")
    p.add_argument("--firmware-dir", default=str(FIRMWARE_DIR), help="firmware folder (default: %(default)s)")
    p.set_defaults(func=do_deploy)


def do_deploy(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    from host_tools.device.deploy import deploy
    from host_tools.device.link import BoardLink

    def progress(kind, path, nbytes):
        if kind == "sent":
            print(f"  sent     {path} ({nbytes} bytes)", flush=True)
        elif kind == "removed":
            print(f"  removed  {path}", flush=True)
        elif kind == "reset":
            print("  soft reset, waiting for the firmware banner...", flush=True)

    print(f"deploying {args.firmware_dir} to {args.port}", flush=True)
    with BoardLink(args.port) as link:
        report = deploy(link, args.firmware_dir, config=args.config, mpy=args.mpy,
                        board=args.board, on_event=progress)
    if report.skipped:
        print(f"  unchanged: {', '.join(report.skipped)}")
    print(f"sent {len(report.sent)} file(s), {report.bytes_sent} bytes ({report.wire_bytes} on the "
          f"serial line); skipped {len(report.skipped)} unchanged; removed {len(report.removed)}")
    print(f"booted: {report.banner} ({report.seconds:.1f} s)")
    return 0

