"""`edgeshadow logs`: show what a board prints, like a serial monitor, without interrupting it."""
import os
import sys
import time

from host_tools.errors import EXIT_UNTESTED, EdgeshadowError
from host_tools.locks import port_lock


def register(sub):
    p = sub.add_parser(
        "logs", help="follow a board's console output (a serial monitor that sends nothing)",
        description="Print everything the board on PORT writes to its serial console, until "
                    "Ctrl-C (or --seconds). Nothing is sent to the board, so the firmware keeps "
                    "running. Works with real boards and with `edgeshadow sim` ports.")
    p.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0 or /dev/pts/3")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.set_defaults(func=do_logs)


def do_logs(args):
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = resolve_port(args.port)
    follow(args.port, args.baud, args.seconds, sys.stdout.buffer)
    return 0


def follow(port, baud, seconds, out):
    if not os.path.exists(port):
        raise EdgeshadowError(f"could not open {port}: no such device", exit_code=EXIT_UNTESTED,
                              hint="check the cable, or run `edgeshadow sim` for a virtual board")
    import serial
    lock = port_lock(port).acquire()  # one edgeshadow command per port (host_tools/locks.py)
    try:
        # Keep DTR/RTS as they are: toggling them resets an ESP32 through its auto-reset circuit.
        s = serial.Serial()
        s.port, s.baudrate, s.timeout = port, baud, 0.2
        s.dtr = s.rts = False
        s.open()
    except (serial.SerialException, OSError) as e:
        lock.release()
        raise EdgeshadowError(f"could not open {port}: {e}", exit_code=EXIT_UNTESTED,
                              hint="is another program (mpremote, a serial monitor) using it?")
    from host_tools.output import say
    say(f"following {port} at {baud} baud (nothing is sent to the board); Ctrl-C stops")
    deadline = time.monotonic() + seconds if seconds else None
    quiet_since, told = time.monotonic(), False
    try:
        while deadline is None or time.monotonic() < deadline:
            data = s.read(4096)
            if not data and not told and time.monotonic() - quiet_since > 10:
                told = True  # a silent port: say so once, keep listening
                say(f"nothing from {port} for 10 s: is the board powered, and is this its port?")
            if data:
                told, quiet_since = False, time.monotonic()
                out.write(data.replace(b"\r\n", b"\n"))
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        s.close()
        lock.release()
