"""The firmware side of a virtual board: the MicroPython process on a pseudo-terminal of its own.

spawn() starts `micropython -i _boot_sim.py` as a board's CPU would run it (its own session and
controlling terminal, the tty in the mode code expects, dying with the supervisor); kill() ends it.
Exit codes of the stand-in machine.py, the reset causes and ROM lines of the ESP32 port, the
deadlock check, and MessageFilter (the stand-ins' messages on the console: ESC ] edgeshadow-sim;
... BEL) live here; host_tools/sim/supervisor.py bridges this process to the user's port.
"""
import fcntl
import os
import pty
import signal
import subprocess
import termios
from pathlib import Path

HERE = Path(__file__).resolve().parent
MPY_DIR = HERE / "mpy"
ROOT = HERE.parent.parent
MICROPYTHON = os.environ.get("EDGESHADOW_MICROPYTHON") or ROOT / ".venv" / "bin" / "micropython"

# machine.py's exit codes.
EXIT_RESET, EXIT_SOFT_RESET, EXIT_DEEPSLEEP = 90, 91, 92
# machine.reset_cause() values of the ESP32 port.
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
ROM_LINES = {
    PWRON_RESET: b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    HARD_RESET: b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    WDT_RESET: b"rst:0x7 (TG0WDT_SYS_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    DEEPSLEEP_RESET: b"rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    SOFT_RESET: b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
}
MSG_PREFIX = b"\x1b]edgeshadow-sim;"
PR_SET_PDEATHSIG = 1


def _set_pdeathsig():
    """The firmware process dies with its supervisor, even if the supervisor is SIGKILLed."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _deadlocked(pid):
    """True when the process is single-threaded and parked on a futex: nobody can wake it."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            if "futex" not in f.read():
                return False
        with open(f"/proc/{pid}/status") as f:
            return any(line.split() == ["Threads:", "1"] for line in f)
    except OSError:
        return False


def _board_tty_mode(fd):
    """The firmware side while code runs: no echo, bytes as they come, Ctrl-C -> SIGINT
    (KeyboardInterrupt in main.py) without flushing what follows it, no other signals or flow
    control. The unix REPL switches to raw mode itself while it waits for input."""
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.IXOFF
              | termios.ISTRIP | termios.BRKINT | termios.INPCK)
    a[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN)
    a[3] |= termios.ISIG | termios.NOFLSH
    cc = a[6]
    for key in (termios.VQUIT, termios.VSUSP):
        cc[key] = b"\0"
    cc[termios.VINTR] = b"\x03"
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


class MessageFilter:
    """Splits the stand-ins' messages (ESC ] edgeshadow-sim; ... BEL) out of the firmware's output.
    feed() returns the output in order: bytes to show, and str messages where they were."""

    def __init__(self):
        self.held = b""

    def feed(self, data):
        buf, items = self.held + data, []
        self.held = b""
        while buf:
            i = buf.find(MSG_PREFIX)
            if i < 0:
                keep = _partial_suffix(buf, MSG_PREFIX)
                items.append(buf[:len(buf) - keep])
                self.held = buf[len(buf) - keep:]
                break
            items.append(buf[:i])
            j = buf.find(b"\x07", i)
            if j < 0:
                if len(buf) - i > 256:  # not one of ours after all
                    items.append(buf[i:])
                else:
                    self.held = buf[i:]
                break
            items.append(buf[i + len(MSG_PREFIX):j].decode("ascii", "replace"))
            buf = buf[j + 1:]
        return [x for x in items if x]


def _partial_suffix(buf, token):
    for n in range(min(len(token) - 1, len(buf)), 0, -1):
        if buf.endswith(token[:n]):
            return n
    return 0


def spawn(micropython, heapsize, cwd, env_extra):
    """Start the firmware: returns (Popen, the non-blocking master fd of its terminal)."""
    master, slave = pty.openpty()
    _board_tty_mode(slave)
    env = dict(os.environ)
    env.update({"MICROPYPATH": str(MPY_DIR), **env_extra})
    args = [str(micropython)]
    if heapsize:
        args += ["-X", f"heapsize={heapsize}"]
    args += ["-i", str(MPY_DIR / "_boot_sim.py")]

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        _set_pdeathsig()

    child = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                             cwd=str(cwd), close_fds=True, preexec_fn=child_setup)
    os.close(slave)
    os.set_blocking(master, False)
    return child, master


def kill(child):
    """SIGKILL the firmware's process group and reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()
