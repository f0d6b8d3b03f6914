"""`edgeshadow sim`: start virtual boards (or virtual ROM bootloaders) and keep them running
until Ctrl-C."""
import argparse
import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError
from host_tools.locks import folder_lock
from host_tools.output import say
from host_tools.sim import runtimes
from host_tools.sim.board import start_boards, stop_boards


def register(sub):
    p = sub.add_parser(
        "sim", help="run virtual ESP32 boards (real MicroPython behind a serial port)",
        description="Start N virtual boards. Each runs the firmware on the real MicroPython unix "
                    "port behind a pseudo-terminal that mpremote, ampy and every edgeshadow "
                    "command use as a board on USB. Prints each board's thing name and serial "
                    "port, then runs until Ctrl-C and stops everything it started. With "
                    "--bootloader: virtual chips in download mode (the ROM bootloader) for "
                    "`edgeshadow flash` instead.")
    p.add_argument("--board", default="sim", help="board definition (default: sim)")
    p.add_argument("--devices", type=int, default=1, metavar="N", help="how many boards (default 1)")
    p.add_argument("--scenario", default="smartgrid", help="physical scenario (default: smartgrid)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenarios (default 0)")
    p.add_argument("--prefix", default="sim", help="thing names are PREFIX-001... (default: sim)")
    p.add_argument("--workdir", default="run/sim", type=Path,
                   help="folder holding each board's flash and state (default: run/sim); "
                        "an existing board folder keeps its files")
    p.add_argument("--bootloader", action="store_true",
                   help="virtual ESP32s in download mode (the ROM bootloader, the --board's chip and "
                        "flash size) for `edgeshadow flash`; each also at WORKDIR/rom-NNN/tty")
    p.add_argument("--image", type=Path, metavar="FILE.bin",
                   help="with --bootloader: also write a small app image for the board's chip to "
                        "FILE.bin, to try `edgeshadow flash` without downloading MicroPython")
    add_runtime_args(p)
    p.set_defaults(func=do_sim)


def add_runtime_args(p):
    """--runtime and --heap, shared by `sim` and `demo`."""
    p.add_argument("--runtime", choices=runtimes.NAMES,
                   help="MicroPython runtime of the boards: esp32like (32-bit, float32, 30-bit ticks, "
                        "an ESP32's heap, the firmware in ROMFS; the default where `make esp32like` "
                        "built it) or unix (PyPI's port: 64-bit, doubles)")
    p.add_argument("--heap", type=_heap_size, metavar="SIZE",
                   help="GC heap the firmware gets on esp32like, e.g. 80k (default: the board "
                        "definition's gc_heap, 112,000 B for an ESP32-WROOM)")


def _heap_size(text):
    try:
        return runtimes.parse_size(text)
    except EdgeshadowError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def do_sim(args):
    if args.devices < 1:
        raise EdgeshadowError(f"--devices must be at least 1, got {args.devices}")
    if args.image and not args.bootloader:
        raise EdgeshadowError("--image goes with --bootloader (an image to flash onto the virtual ROM)")
    # Ctrl-C and SIGTERM both stop the boards, also when started as a background job (which
    # begins with SIGINT ignored)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        return _run_roms(args) if args.bootloader else _run_boards(args)
    except KeyboardInterrupt:
        say("stopped")
        return 0


def _run_boards(args):
    say(f"starting {args.devices} virtual board(s) in {args.workdir} ...")
    boards = []
    try:
        boards = start_boards(args.devices, args.workdir, args.prefix, args.board, args.scenario,
                              args.seed, runtime=args.runtime, heap=args.heap)
        for b in boards:
            print(f"{b.thing}  {b.port}  (also {b.link})", flush=True)
        say(f"{len(boards)} board(s) running; Ctrl-C stops them")
        while True:
            time.sleep(0.5)
            for b in boards:
                if not b.running:
                    raise EdgeshadowError(f"virtual board {b.thing} stopped unexpectedly; "
                                          f"see {b.sim_dir / 'supervisor.err'}")
    finally:
        if boards:
            say("stopping virtual boards")
        stop_boards(boards)


def _run_roms(args):
    from host_tools.device.images import build_image   # esptool: 0.4 s to import, only here
    from host_tools.sim.rom import VirtualROM
    board = load_board(args.board)
    chip, size = board["chip"], board["flash_size"]
    if args.image:
        _write_image(args.image, build_image(chip, bytes(range(256)) * 64, f"{size // 1048576}MB"))
    with ExitStack() as stack:
        for i in range(1, args.devices + 1):
            folder = args.workdir / f"rom-{i:03d}"
            stack.enter_context(folder_lock(folder, "virtual ROM folder"))
            rom = stack.enter_context(VirtualROM(chip, flash_size=size, mac=(0x24, 0x0A, 0xC4, 0, 0, i)))
            link = folder / "tty"
            link.unlink(missing_ok=True)
            os.symlink(rom.port, link)
            stack.callback(link.unlink, missing_ok=True)
            print(f"rom-{i:03d}  {rom.port}  (also {link})", flush=True)
        say(f"{args.devices} virtual {rom.facts.name}(s) with {size // 1048576} MB of flash in download "
            f"mode; try: edgeshadow flash --board {board['name']} --port {link} --firmware "
            f"{args.image or 'FILE.bin'}; Ctrl-C stops them")
        while True:
            time.sleep(0.5)


def _write_image(path, data):
    try:
        path.write_bytes(data)
    except OSError as e:
        raise EdgeshadowError(f"--image {path}: cannot write: {e.strerror}")
    say(f"wrote a {len(data)}-byte test image to {path}")


def _interrupt(*_):
    raise KeyboardInterrupt
