"""`edgeshadow flash`: write a firmware image to one or more boards, checked first."""
import sys
import threading

from host_tools.device.boards import load_board


def register(sub):
    p = sub.add_parser(
        "flash", help="flash a MicroPython firmware image to boards (checked before writing)",
        description="Check FILE.bin against the board definition (ESP image magic, chip id, size), "
                    "then flash it to every --port in parallel with esptool, checking the chip "
                    "found on each port first. Exit code 0 only if every board was flashed.")
    p.add_argument("--board", required=True, help="board definition name (boards/<name>.json)")
    p.add_argument("--port", required=True, action="append", dest="ports", metavar="PORT",
                   help="serial port of a board in download mode; repeat for several boards")
    p.add_argument("--firmware", required=True, metavar="FILE.bin", help="firmware image")
    p.add_argument("--erase", action="store_true", help="erase the whole flash before writing")
    p.add_argument("--baud", type=int, help="baud rate for writing (default: the board's)")
    p.set_defaults(func=do_flash)


class _Printer:
    """Per-board progress lines: stage changes and every 10% of the write."""

    def __init__(self, stream):
        self.stream, self.lock, self.last = stream, threading.Lock(), {}

    def __call__(self, port, stage, done=None, total=None):
        if stage in ("writing", "verifying") and total:
            step = (100 * (done or 0) // total) // 10 * 10
            key = (stage, step)
            text = f"{stage} {step}%"
        else:
            key, text = (stage,), stage
        with self.lock:
            if self.last.get(port) == key:
                return
            self.last[port] = key
            print(f"[{port}] {text}", file=self.stream, flush=True)


def do_flash(args):
    board = load_board(args.board)
    from host_tools.device.flash import flash_boards  # esptool: imported for a flash, not for --help
    results = flash_boards(board, args.ports, args.firmware, erase=args.erase, baud=args.baud,
                           on_event=_Printer(sys.stdout))
    print()
    for r in results:
        state = r.detail if r.ok else f"FAILED: {r.detail}"
        print(f"{board['name']} on {r.port}: {state}")
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"{failed} of {len(results)} board(s) failed", file=sys.stderr)
        return 1
    return 0
