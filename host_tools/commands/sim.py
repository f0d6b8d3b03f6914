"""`edgeshadow sim`: start virtual boards and keep them running until Ctrl-C."""
import argparse
import signal
import sys
import time
from pathlib import Path

from host_tools.sim import runtimes
from host_tools.errors import EdgeshadowError
from host_tools.sim.board import start_boards, stop_boards


def register(sub):
    p = sub.add_parser(
        "sim", help="run virtual ESP32 boards (real MicroPython behind a serial port)",
        description="Start N virtual boards. Each runs the firmware on the real MicroPython unix "
                    "port behind a pseudo-terminal that mpremote, ampy and every edgeshadow "
                    "command use as a board on USB. Prints each board's serial port and thing "
                    "name, then runs until Ctrl-C and stops everything it started.")
    p.add_argument("--board", default="sim", help="board definition (default: sim)")
    p.add_argument("--devices", type=int, default=1, metavar="N", help="how many boards (default 1)")
    p.add_argument("--scenario", default="smartgrid", help="physical scenario (default: smartgrid)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenarios (default 0)")
    p.add_argument("--prefix", default="sim", help="thing names are PREFIX-001... (default: sim)")
    p.add_argument("--workdir", default="run/sim", type=Path,
                   help="folder holding each board's flash and state (default: run/sim); "
                        "an existing board folder keeps its files")
    add_runtime_args(p)
    p.set_defaults(func=do_sim)


def add_runtime_args(p):
    """--runtime and --heap, shared by `sim` and `demo`."""
    p.add_argument("--runtime", choices=runtimes.NAMES,
                   help="MicroPython runtime of the boards: unix (PyPI's port: 64-bit, doubles; "
                        "the default) or esp32like (32-bit, float32, 30-bit ticks, an ESP32's "
                        "heap: `make esp32like`)")
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
    print(f"starting {args.devices} virtual board(s) in {args.workdir} ...", file=sys.stderr, flush=True)
    # Ctrl-C and SIGTERM both stop the boards, also when started as a background job (which
    # begins with SIGINT ignored)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    boards = []
    try:
        boards = start_boards(args.devices, args.workdir, args.prefix, args.board, args.scenario,
                              args.seed, runtime=args.runtime, heap=args.heap)
        for b in boards:
            print(f"{b.thing}  {b.port}  (also {b.link})", flush=True)
        print(f"{len(boards)} board(s) running; Ctrl-C stops them", file=sys.stderr, flush=True)
        while True:
            time.sleep(0.5)
            for b in boards:
                if not b.running:
                    raise EdgeshadowError(f"virtual board {b.thing} stopped unexpectedly; "
                                          f"see {b.sim_dir / 'supervisor.err'}")
    except KeyboardInterrupt:
        print("stopping virtual boards", file=sys.stderr, flush=True)
        return 0
    finally:
        stop_boards(boards)


def _interrupt(*_):
    raise KeyboardInterrupt
