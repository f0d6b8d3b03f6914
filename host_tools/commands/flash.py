"""`edgeshadow flash`: write a firmware image to one or more boards, checked first."""
import threading

from host_tools.device.boards import load_board
from host_tools.device.ports import resolve_port
from host_tools.errors import EXIT_FAILED, EXIT_OK, EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError
from host_tools.output import Progress, add_json_arg, emit, say


def register(sub):
    p = sub.add_parser(
        "flash", help="flash a MicroPython firmware image to boards (checked before writing)",
        description="Check FILE.bin against the board definition (ESP image magic, chip id, size), "
                    "then flash it to every --port in parallel with esptool, checking the chip "
                    "found on each port first. Progress goes to stderr, one result line per board "
                    "to stdout. Exit code 0 only if every board was flashed; 3 when a port gives "
                    "no answer or is in use.")
    p.add_argument("--board", required=True, help="board definition name (boards/<name>.json)")
    p.add_argument("--port", required=True, action="append", dest="ports", metavar="PORT",
                   help="serial port of a board in download mode (`auto`: the only ESP32 USB "
                        "bridge, see `edgeshadow ports`; a virtual ROM: `edgeshadow sim "
                        "--bootloader`); repeat for several boards")
    p.add_argument("--firmware", required=True, metavar="FILE.bin", help="firmware image")
    p.add_argument("--erase", action="store_true", help="erase the whole flash before writing")
    p.add_argument("--baud", type=int, help="baud rate for writing (default: the board's)")
    add_json_arg(p, "the result per board")
    p.set_defaults(func=do_flash)


class _Printer:
    """Per-board stage lines on stderr, and the bytes written so far on one Progress."""

    def __init__(self, progress):
        self.progress, self.lock, self.last, self.done = progress, threading.Lock(), {}, {}

    def __call__(self, port, stage, done=None, total=None):
        with self.lock:
            if stage == "writing" and total:
                step = (done or 0) - self.done.get(port, 0)
                self.done[port] = done or 0
                if step > 0:
                    self.progress.advance(step, port)
            if stage == "verifying" or self.last.get(port) == stage:
                return
            self.last[port] = stage
            say(f"[{port}] {stage}")


def do_flash(args):
    from host_tools.device.flash import flash_boards, read_checked_image   # esptool: 0.4 s to import
    if args.baud is not None and args.baud <= 0:
        raise EdgeshadowError(f"--baud {args.baud}: a baud rate is a positive number, e.g. 460800",
                              exit_code=EXIT_USAGE)
    board = load_board(args.board)
    ports = [resolve_port(p) for p in args.ports]
    image = read_checked_image(board, args.firmware)   # before any port is opened or progress shown
    say(f"flashing {args.firmware} ({len(image)} bytes) to {len(ports)} {board['name']} board(s) "
        f"at 0x{board['image_offset']:X}")
    with Progress("writing", total=len(image) * len(ports), unit="bytes") as progress:
        results = flash_boards(board, ports, args.firmware, erase=args.erase, baud=args.baud,
                               on_event=_Printer(progress))
    failed = [r for r in results if not r.ok]
    doc = {"board": board["name"], "firmware": str(args.firmware), "image_bytes": len(image),
           "ok": not failed, "results": [r.to_json() for r in results]}
    if len(results) == 1 and failed:   # one board: its reason is the one-line error
        if args.json:
            emit(args, doc)
        raise EdgeshadowError(failed[0].detail, exit_code=failed[0].exit_code)

    def show():
        for r in results:
            print(f"{board['name']} on {r.port}: {r.detail if r.ok else 'FAILED: ' + r.detail}", flush=True)

    emit(args, doc, show)
    if not failed:
        return EXIT_OK
    say(f"{len(failed)} of {len(results)} board(s) failed")
    # 3 (could not test) only when no board that answered failed
    return EXIT_FAILED if any(r.exit_code == EXIT_FAILED for r in failed) else EXIT_UNTESTED

