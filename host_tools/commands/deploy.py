"""`edgeshadow deploy`: copy the firmware to a board, sending only what changed."""
import argparse

from host_tools import FIRMWARE_DIR
from host_tools.output import Progress, add_json_arg, emit, say


def register(sub):
    p = sub.add_parser(
        "deploy", help="copy firmware/ to a board over one connection, only what changed",
        description="Check the device config (the firmware's own validator and the board check), "
                    "send the firmware files whose SHA-256 differs from the board's, remove files "
                    "the firmware no longer has (never /certs, /config.json, /board.json, /spool), "
                    "upload the config atomically, soft-reset, and wait for the application to "
                    "announce that it runs this version with this config. Exit code 0 only then; "
                    "1 with the board's own reason otherwise; 3 when no board answers.")
    p.add_argument("--port", required=True, help="serial port of the board (or a virtual board's pty)")
    p.add_argument("--config", metavar="FILE", help="device config to upload as /config.json")
    p.add_argument("--mpy", action="store_true",
                   help="compile modules with mpy-cross for the board's architecture, send .mpy")
    p.add_argument("--board", metavar="NAME",
                   help="board definition: written as /board.json, gives the --mpy architecture "
                        "(default: the config's \"board\", else the board's own /board.json)")
    p.add_argument("--romfs", action=argparse.BooleanOptionalAction, default=None,
                   help="put the firmware's modules (.mpy) in the board's ROMFS partition, run in place "
                        "from flash (MicroPython 1.25+ built with one; the whole firmware then fits an "
                        "ESP32-WROOM's heap), and remove their filesystem copies; --no-romfs keeps them "
                        "on the filesystem (default: ROMFS where the board has the partition)")
    p.add_argument("--firmware-dir", default=str(FIRMWARE_DIR), help="firmware folder (default: %(default)s)")
    add_json_arg(p, "the deploy report")
    p.set_defaults(func=do_deploy)


class _Events:
    """deploy's on_event as lines (and a bar on a terminal) on stderr."""

    def __init__(self, port):
        self.port, self.bar = port, None

    def __call__(self, kind, path, nbytes):
        if kind == "plan" and nbytes:
            self.bar = Progress("sending", total=nbytes, unit="files").__enter__()
        elif kind == "sent" and self.bar is not None:
            self.bar.advance(1, f"{path} ({nbytes} bytes)")
        elif kind == "romfs":
            say(f"  ROMFS image ({nbytes} bytes): {path}")
        elif kind == "removed":
            say(f"  removed  {path}")
        elif kind == "reset":
            self.close()
            say("  soft reset, waiting for the firmware banner ...")
        elif kind == "start":
            say("  waiting for the application to announce that it runs ...")

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def do_deploy(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    from host_tools.device.deploy import deploy
    from host_tools.device.link import BoardLink

    if args.config:  # on the host, before the port is opened (deploy checks it again, with the board's)
        from host_tools.device.board_check import load_config_file
        load_config_file(args.config, args.board)
    events = _Events(args.port)
    try:
        with BoardLink(args.port) as link:  # the port is ours (locks.py), then we wait for the board
            say(f"deploying {args.firmware_dir} to {args.port}: waiting for the board to answer "
                f"(Ctrl-C, raw REPL) ...")
            r = deploy(link, args.firmware_dir, config=args.config, mpy=args.mpy,
                       board=args.board, on_event=events, romfs=args.romfs)
    finally:
        events.close()
    doc = {"ok": True, "port": args.port, "version": r.version, "thing": r.thing,
           "config": r.app.get("config"), "sent": [{"path": p, "bytes": n} for p, n in r.sent],
           "skipped": r.skipped, "removed": r.removed, "bytes_sent": r.bytes_sent,
           "wire_bytes": r.wire_bytes, "seconds": round(r.seconds, 2), "romfs": r.romfs or None}

    def text():
        if r.skipped:
            print(f"unchanged: {', '.join(r.skipped)}")
        if r.romfs:
            print(f"ROMFS image {r.romfs['bytes']} bytes of the partition's {r.romfs['partition']}: "
                  f"{'written and verified' if r.romfs['written'] else 'unchanged'}")
        print(f"sent {len(r.sent)} file(s), {r.bytes_sent} bytes ({r.wire_bytes} on the serial "
              f"line); skipped {len(r.skipped)} unchanged; removed {len(r.removed)}")
        print(f"running: firmware v{r.version} thing={r.thing} config={r.app.get('config')} "
              f"({r.seconds:.1f} s)")
    emit(args, doc, text)
    return 0
