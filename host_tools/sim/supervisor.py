"""One virtual board's supervisor: the serial port users open, and the firmware's process behind it.

Run as its own process (`python -m host_tools.sim.supervisor FLASH_DIR SIM_DIR`) by VirtualBoard.
It owns two pseudo-terminal pairs:
- the user side, whose slave path is the board's serial port (mpremote/ampy open it);
- the firmware side, on which `.venv/bin/micropython -i _boot_sim.py` runs.
It copies bytes between them and turns the unix port's behaviour into a board's:
- Ctrl-D at either REPL ends the unix process; the supervisor restarts it and the user sees
  "MPY: soft reboot", boot.py's output, then main.py's (friendly REPL) or the raw REPL prompt again
  (raw REPL), as mpremote and ampy expect after a soft reset;
- machine.reset()/soft_reset()/deepsleep() exit with codes the supervisor maps to those resets;
- the watchdog the firmware started (machine.WDT) is enforced here: not fed in time, the process is
  killed and the board boots again with reset_cause WDT_RESET;
- input is held while the board boots (until the bootstrap says "ready"), as a board's UART
  receives nothing useful before the REPL runs.
State for the host goes to SIM_DIR/supervisor.json ({"pid", "port", "state", "boots", ...}) and
everything the board printed to SIM_DIR/console.log. Starting and killing the firmware process, its
exit codes and the stand-ins' message channel are in firmware_process.py.

Why this module is over 350 lines: Supervisor is one state machine (REPL mode, ready, input held
while booting, output held for a slow reader, watchdog, deep sleep, hang check) that both sides of
the bridge read and change on every byte; split across files, each half would need the other's
state to be understood.
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time
import tty
from pathlib import Path

from host_tools.sim.firmware_process import (
    DEEPSLEEP_RESET, EXIT_DEEPSLEEP, EXIT_RESET, HARD_RESET, MICROPYTHON, PWRON_RESET, ROM_LINES,
    SOFT_RESET, WDT_RESET, MessageFilter, _deadlocked, kill, spawn)


RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_BANNER = b'Type "help()" for more information.'
OUT_HIGH_WATER = 256 * 1024  # stop reading the firmware when this much output waits for the user
STALL_DROP_S = 2.0           # nobody read the port for this long: drop output, as a UART would
HANG_CHECK_S = 0.25  # how often the firmware process is checked for a deadlock
HANG_CHECKS = 3      # consecutive deadlocked checks before the board is reset


class Supervisor:
    def __init__(self, flash_dir, sim_dir, link=None, micropython=MICROPYTHON, heapsize=None,
                 board_heap=None):
        self.flash_dir = str(Path(flash_dir).resolve())
        self.sim_dir = Path(sim_dir).resolve()
        self.link = link
        self.micropython = str(micropython)
        self.heapsize = heapsize
        self.board_heap = board_heap
        # the simulated world's time zero: the board's power-on. Its sensors, mains and scenario go
        # on through soft and hard resets (the unix port's ticks and CPython's monotonic clock are
        # the same CLOCK_MONOTONIC)
        self.world_t0_ms = int(time.monotonic() * 1000)
        self._open_port()
        self.child = None
        self.child_fd = None
        self.boots = 0
        try:  # chip boots over the board's life (not only this supervisor's): the bootloader's clock
            self.chip_boots = int((self.sim_dir / "chip_boots").read_text())
        except (OSError, ValueError):
            self.chip_boots = 0
        self.mode = "friendly"
        self.ready = False
        self.swallow_until_raw = False
        self.to_user = bytearray()
        self.to_child = bytearray()
        self.held_input = bytearray()
        self.last_user_drain = time.monotonic()
        self.tail = b""
        self.held_cr = b""
        self.filter = MessageFilter()
        self.wdt_timeout = None
        self.wdt_fed = 0.0
        self.stopping = False
        self.next_hang_check = 0.0
        self.sleep_ms = None
        self.wake_at = None
        self.hang_checks = 0
        self.parent = os.getppid()
        self.log = open(self.sim_dir / "console.log", "ab", buffering=0)
        # EDGESHADOW_SIM_TRACE=1: every byte each way, timestamped, in sim/trace.log (debugging).
        self.trace = (open(self.sim_dir / "trace.log", "a", buffering=1)
                      if os.environ.get("EDGESHADOW_SIM_TRACE") else None)
        if link:
            try:
                os.unlink(link)
            except FileNotFoundError:
                pass
            os.symlink(self.port, link)

    def _open_port(self):
        """The user side: a pseudo-terminal pair whose slave is the board's serial port."""
        self.user_master, self.user_slave = pty.openpty()
        tty.setraw(self.user_slave)  # no echo of our own output back to us before a tool opens it
        self.port = os.ttyname(self.user_slave)
        os.set_blocking(self.user_master, False)

    # -- state the host reads ------------------------------------------------------------------
    def write_state(self, state):
        info = {"pid": os.getpid(), "port": self.port, "link": self.link, "state": state,
                "boots": self.boots, "mode": self.mode,
                "child_pid": self.child.pid if self.child else None}
        tmp = self.sim_dir / "supervisor.json.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.sim_dir / "supervisor.json")

    # -- the firmware process ------------------------------------------------------------------
    def boot(self, reset_cause=None, mode="friendly", banner=b""):
        """Start the firmware. reset_cause None keeps the previous one (a soft reboot)."""
        if reset_cause is not None:
            (self.sim_dir / "reset_cause").write_text(str(reset_cause))
        self.emit(banner)
        self.child, self.child_fd = spawn(
            self.micropython, self.heapsize, self.sim_dir,
            {"EDGESHADOW_SIM_DIR": str(self.sim_dir), "EDGESHADOW_FLASH_DIR": self.flash_dir,
             "EDGESHADOW_SIM_MODE": mode, "EDGESHADOW_BOARD_HEAP": str(self.board_heap or ""),
             "EDGESHADOW_WORLD_T0_MS": str(self.world_t0_ms)})
        self.boots += 1
        self.hang_checks = 0
        self.mode = mode
        self.ready = False
        self.swallow_until_raw = False
        self.filter = MessageFilter()
        self.tail = b""
        self.held_cr = b""
        self.write_state("booting")

    def kill_child(self):
        if self.child is None:
            return
        kill(self.child)
        self.close_child_fd()
        self.child = None

    def close_child_fd(self):
        if self.child_fd is not None:
            os.close(self.child_fd)
            self.child_fd = None

    def hard_reset(self, cause):
        """The chip resets: ROM lines, the watchdog gone, boot.py and main.py."""
        self.kill_child()
        self.chip_boots += 1  # the esp32 stand-in's bootloader runs once per chip boot
        tmp = self.sim_dir / "chip_boots.tmp"
        tmp.write_text(str(self.chip_boots))
        os.replace(tmp, self.sim_dir / "chip_boots")
        self.wdt_timeout = None
        self.to_child.clear()
        self.boot(cause, "friendly", b"ets Jun  8 2016 00:22:57\r\n\r\n" + ROM_LINES[cause] + b"\r\n")

    def on_child_exit(self, code):
        self.drain_child()
        self.close_child_fd()
        self.child = None
        if self.stopping:
            return
        if code == EXIT_RESET:
            self.hard_reset(SOFT_RESET)
        elif code == EXIT_DEEPSLEEP:
            # Asleep: no process until the timer wakes the chip (machine.deepsleep(ms)).
            self.wake_at = time.monotonic() + (self.sleep_ms or 0) / 1000.0
            self.sleep_ms = None
            self.write_state("asleep")
        elif code == -signal.SIGINT:
            # A Ctrl-C that reached the process between two runs of code (the unix port puts the
            # default SIGINT action back after each): a board would just carry on, so reboot
            # softly into the same REPL mode.
            self.boot(None, self.mode, b"MPY: soft reboot\r\n")
        elif code is not None and code < 0:
            self.emit(b"\r\nGuru Meditation Error: the firmware process died (signal %d)\r\n" % -code)
            self.hard_reset(HARD_RESET)
        else:
            # Ctrl-D at a REPL, sys.exit() or machine.soft_reset(): a soft reboot. From the raw
            # REPL the board comes back in the raw REPL without running main.py (pyexec keeps
            # its mode across a soft reset).
            self.boot(None, self.mode, b"MPY: soft reboot\r\n")

    # -- bytes ---------------------------------------------------------------------------------
    def emit(self, data):
        if data:
            self.to_user += data
            self.log.write(data)

    def from_child(self, data):
        if self.trace:
            self.trace.write(f"{time.monotonic():.3f} <child {data!r}\n")
        for item in self.filter.feed(data):
            if isinstance(item, str):
                self.on_message(item)
            else:
                self.show(item)

    def show(self, data):
        # The unix REPL writes "\r\n" and the terminal's ONLCR (kept on so print() gives "\r\n"
        # as a board's UART does) makes it "\r\r\n"; mpremote and ampy match "exit\r\n>" exactly.
        data = self.held_cr + data
        keep = len(data) - len(data.rstrip(b"\r"))
        self.held_cr = data[len(data) - keep:] if keep else b""
        data = data[:len(data) - keep].replace(b"\r\r\n", b"\r\n")
        if not data:
            return
        scan = self.tail + data
        r, f = scan.rfind(RAW_BANNER), scan.rfind(FRIENDLY_BANNER)
        if r >= 0 or f >= 0:
            self.mode = "raw" if r > f else "friendly"
        self.tail = scan[-64:]
        if self.swallow_until_raw:
            # Restarted after a soft reset in the raw REPL: hide the unix REPL's banner and the
            # Ctrl-A we typed for the user; show the board's "raw REPL; CTRL-B to exit\r\n>".
            i = scan.find(RAW_BANNER)
            if i < 0:
                return
            self.swallow_until_raw = False
            data = scan[i:]
            self.set_ready()
        elif not self.ready and f >= 0:
            self.set_ready()  # the bootstrap failed before saying so, but the REPL runs
        self.emit(data)

    def set_ready(self):
        self.ready = True
        self.write_state("ready")
        self.to_child += self.held_input
        self.held_input.clear()

    def on_message(self, msg):
        if msg == "ready":
            if self.ready or self.swallow_until_raw:
                return
            if self.mode == "raw":
                self.child_write(b"\x01")
                self.swallow_until_raw = True
            else:
                self.set_ready()
        elif msg.startswith("exit="):  # boot.py/main.py ended with SystemExit
            self.kill_child()
            self.on_child_exit(int(msg[5:]))
        elif msg.startswith("sleep="):
            self.sleep_ms = int(msg[6:])
        elif msg.startswith("wdt="):
            self.wdt_timeout = int(msg[4:]) / 1000.0
            self.wdt_fed = time.monotonic()

    def child_write(self, data):
        try:
            os.write(self.child_fd, data)
        except OSError:
            pass

    def from_user(self, data):
        if self.trace:
            self.trace.write(f"{time.monotonic():.3f} <user ready={self.ready} {data!r}\n")
        if self.child is None or not self.ready or self.swallow_until_raw:
            self.held_input += data
        else:
            self.to_child += data

    def drain_child(self):
        while self.child_fd is not None:
            try:
                data = os.read(self.child_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            self.from_child(data)

    # -- the loop ------------------------------------------------------------------------------
    def run(self):
        signal.signal(signal.SIGTERM, lambda *a: self.stop_soon())
        signal.signal(signal.SIGINT, lambda *a: self.stop_soon())
        self.hard_reset(PWRON_RESET)
        try:
            while not self.stopping:
                self.step()
        finally:
            self.shutdown()

    def stop_soon(self):
        self.stopping = True

    def step(self):
        rlist, wlist = [self.user_master], []
        if self.child_fd is not None and len(self.to_user) < OUT_HIGH_WATER:
            rlist.append(self.child_fd)
        if self.to_user:
            wlist.append(self.user_master)
        if self.to_child and self.child_fd is not None:
            wlist.append(self.child_fd)
        try:
            r, w, _ = select.select(rlist, wlist, [], 0.05)
        except InterruptedError:
            return
        if self.user_master in r:
            try:
                data = os.read(self.user_master, 65536)
            except (BlockingIOError, OSError):
                data = b""
            if data:
                self.from_user(data)
        if self.child_fd is not None and self.child_fd in r:
            try:
                data = os.read(self.child_fd, 65536)
            except BlockingIOError:
                data = b""
            except OSError:  # EIO: the process closed its terminal (it is exiting)
                data = None
            if data:
                self.from_child(data)
        elif self.held_cr:
            self.emit(self.held_cr)  # a lone "\r" (a progress line): nothing more came, show it
            self.held_cr = b""
        if self.user_master in w:
            try:
                n = os.write(self.user_master, self.to_user)
                del self.to_user[:n]
                self.last_user_drain = time.monotonic()
            except BlockingIOError:
                pass
        if self.child_fd is not None and self.child_fd in w:
            try:
                n = os.write(self.child_fd, self.to_child)
                if self.trace:
                    self.trace.write(f"{time.monotonic():.3f} >child {bytes(self.to_child[:n])!r}\n")
                del self.to_child[:n]
            except BlockingIOError:
                pass
            except OSError:
                pass
        self.housekeeping()

    def housekeeping(self):
        now = time.monotonic()
        if self.to_user and now - self.last_user_drain > STALL_DROP_S:
            # Nobody has the port open (or nobody reads it): a UART drops what it cannot send.
            termios.tcflush(self.user_slave, termios.TCIFLUSH)
            self.to_user.clear()
            self.last_user_drain = now
        if not self.to_user:
            self.last_user_drain = now
        if self.child is not None:
            code = self.child.poll()
            if code is not None:
                self.on_child_exit(code)
                return
        if self.wake_at is not None and now >= self.wake_at:
            self.wake_at = None
            self.hard_reset(DEEPSLEEP_RESET)
            return
        if self.child is not None and now >= self.next_hang_check:
            self.next_hang_check = now + HANG_CHECK_S
            self.hang_checks = self.hang_checks + 1 if _deadlocked(self.child.pid) else 0
            if self.hang_checks >= HANG_CHECKS:
                # A Ctrl-C that lands inside an import or a compile can leave the unix port's qstr
                # lock taken, and the next compile waits on it (one thread, parked on a futex:
                # nobody can wake it). A board's interrupt watchdog resets a hung CPU; so do we.
                self.emit(b"\r\nGuru Meditation Error: Core  1 panic'ed (Interrupt wdt timeout on "
                          b"CPU1): the firmware process is deadlocked\r\n")
                self.hard_reset(HARD_RESET)
                return
        if (self.wdt_timeout is not None and self.child is not None
                and now - self.wdt_fed > self.wdt_timeout):
            self.emit(b"\r\nE (%d) task_wdt: Task watchdog got triggered.\r\n" % int(now * 1000))
            self.hard_reset(WDT_RESET)
        if os.getppid() != self.parent:  # whoever started us is gone
            self.stopping = True

    def shutdown(self):
        self.stopping = True
        self.kill_child()
        self.write_state("stopped")
        if self.link:
            try:
                os.unlink(self.link)
            except FileNotFoundError:
                pass
        for fd in (self.user_master, self.user_slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()


def main(argv):
    import argparse
    p = argparse.ArgumentParser(prog="python -m host_tools.sim.supervisor")
    p.add_argument("flash_dir")
    p.add_argument("sim_dir")
    p.add_argument("--link", help="symlink to publish the serial port under")
    p.add_argument("--heapsize", help="MicroPython heap size, e.g. 128K")
    p.add_argument("--micropython", default=MICROPYTHON, help="the MicroPython binary to run")
    p.add_argument("--board-heap", type=int,
                   help="bytes of GC heap the firmware gets (the rest of --heapsize holds the "
                        "stand-ins for the ESP32's C modules)")
    args = p.parse_args(argv)
    Supervisor(args.flash_dir, args.sim_dir, args.link, micropython=args.micropython,
               heapsize=args.heapsize, board_heap=args.board_heap).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
