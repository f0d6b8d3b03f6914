"""Flash a firmware image onto one or more boards, with checks before anything is written.

Built on esptool's Python API (esptool.cmds: detect_chip, run_stub, attach_flash, write_flash,
reset_chip). The chip, image offset, flash size and baud rates come from the board definition.
Order of work, per board:
  1. (once, for all ports) the image: magic 0xE9, chip id for the board's chip, fits its flash;
  2. connect at the ROM baud rate and detect the chip: it must be the board's chip;
  3. upload the flasher stub (real serial ports), switch to the board's baud rate, attach flash,
     check the detected flash size is at least the board's;
  4. optionally erase, write (esptool verifies the MD5 of what it wrote), reset.

Pseudo-terminals (a virtual ROM bootloader, or a serial bridge) have no DTR/RTS lines to reset a
chip into download mode and the virtual ROM runs no stub: for them the connection options are
before="no-reset", no stub, after="soft-reset". Real serial ports get esptool's defaults.
"""
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import serial
from esp_pylib.logger import EspLog, EspLogBase
from esptool.cmds import (attach_flash, detect_chip, detect_flash_size, erase_flash, reset_chip,
                          run_stub, write_flash)
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError, NotImplementedInROMError, flash_size_bytes

from host_tools.device.images import check_image_for_board, chip_label
from host_tools.errors import EXIT_FAILED, EXIT_UNTESTED, EdgeshadowError
from host_tools.locks import port_lock

_PTY_MAJORS = range(136, 144)   # Linux UNIX98 pty slaves (/dev/pts/N)
_CONNECT_ATTEMPTS = 3


def is_pseudo_terminal(port):
    try:
        st = os.stat(port)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _PTY_MAJORS


def connection_options(port):
    """esptool options for `port`: the defaults for a real serial port, no-reset/no-stub for a pty."""
    if is_pseudo_terminal(port):
        return {"before": "no-reset", "after": "soft-reset", "stub": False}
    return {"before": "default-reset", "after": "hard-reset", "stub": True}


def _chip_key(esp):
    for name, cls in CHIP_DEFS.items():
        if cls.CHIP_NAME == esp.CHIP_NAME:
            return name
    return esp.CHIP_NAME.lower()


@dataclass
class FlashResult:
    port: str
    ok: bool
    detail: str                 # "ok" details or the reason it failed
    chip: str | None = None
    mac: str | None = None
    bytes_written: int = 0
    seconds: float = 0.0
    exit_code: int = 0          # for a failure: 1 failed, 3 could not test (no answer, port busy)

    def to_json(self):
        return asdict(self)


# -- routing esptool's log output to the board (thread) it belongs to ----------------------------
class _ThreadLog(EspLogBase):
    """esptool's logger while boards are flashed: each thread's messages go to that board's sink."""

    def __init__(self):
        self._local = threading.local()

    def bind(self, sink):
        self._local.sink = sink

    def _sink(self):
        return getattr(self._local, "sink", None)

    def print(self, *args, **kwargs):
        sink = self._sink()
        if sink:
            sink.text(" ".join(str(a) for a in args) + kwargs.get("end", "\n"))

    def note(self, *args):
        self.print("Note:", *args)

    def hint(self, *args):
        self.print(*args)

    def warn(self, *args, suggestion=None):
        self.print("Warning:", *args)

    def err(self, *args, suggestion=None):
        self.print("Error:", *args)

    def debug(self, *args):
        pass

    def set_verbosity(self, mode):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        sink = self._sink()
        if sink:
            sink.progress(cur_iter, total_iters, prefix.strip())


class _Sink:
    def __init__(self, port, on_event):
        self.port, self.on_event = port, on_event
        self.lines, self._partial = [], ""

    def text(self, s):
        self._partial += s
        *done, self._partial = self._partial.split("\n")
        self.lines.extend(line for line in done if line.strip())
        del self.lines[:-40]

    def progress(self, done, total, what):
        stage = "verifying" if what.startswith("Verif") else "writing"
        self.event(stage, done, total)

    def event(self, stage, done=None, total=None):
        if self.on_event:
            self.on_event(self.port, stage, done, total)


_log_lock = threading.Lock()


# -- one board ---------------------------------------------------------------------------------
def check_serial_port(port):
    """`port` must exist and be a terminal (a serial port or a pty); exit 3 otherwise."""
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise EdgeshadowError(f"could not open {port}: no such device", exit_code=EXIT_UNTESTED,
                              hint="check the cable and `edgeshadow ports`")
    except OSError as e:
        raise EdgeshadowError(f"could not open {port}: {e.strerror}", exit_code=EXIT_UNTESTED)
    try:
        if not os.isatty(fd):
            raise EdgeshadowError(f"{port} is not a serial port", exit_code=EXIT_UNTESTED,
                                  hint="see `edgeshadow ports`")
    finally:
        os.close(fd)


def _connect(board, port, opts, sink):
    """esptool's ESPLoader for the chip in download mode on `port` (cannot test: exit 3)."""
    sink.event(f"connecting at {board['rom_baud']} baud (the board must be in download mode)")
    try:
        return detect_chip(port, board["rom_baud"], connect_mode=opts["before"],
                           connect_attempts=opts.get("connect_attempts", _CONNECT_ATTEMPTS))
    except (FatalError, serial.SerialException, OSError) as e:
        raise EdgeshadowError(f"could not connect to a chip in download mode on {port}: "
                              f"{str(e).splitlines()[0]}", exit_code=EXIT_UNTESTED)


def _check_chip(esp, board, port, opts, baud, sink):
    """The chip must be the board's, with at least the board's flash. Returns (esp, chip, mac);
    esp is the stub's loader when the stub runs."""
    found = _chip_key(esp)
    if found != board["chip"]:
        raise EdgeshadowError(f"the chip on {port} is an {esp.CHIP_NAME} but board {board['name']} "
                              f"expects an {chip_label(board['chip'])}; nothing was written")
    mac = ":".join(f"{b:02x}" for b in esp.read_mac())
    sink.event(f"detected {esp.CHIP_NAME} (MAC {mac})")
    if opts["stub"]:
        esp = run_stub(esp)
    if baud != board["rom_baud"]:
        esp.change_baud(baud)
    attach_flash(esp)
    size_name = detect_flash_size(esp)
    if size_name and flash_size_bytes(size_name) < board["flash_size"]:
        raise EdgeshadowError(f"the chip on {port} has {size_name} of flash but board {board['name']} "
                              f"expects {board['flash_size'] // 1048576} MB; nothing was written")
    return esp, found, mac


def _write(esp, board, image, erase, opts, sink):
    if erase:
        sink.event("erasing")
        if esp.IS_STUB:
            erase_flash(esp)
        else:   # the ROM has no chip erase; FLASH_BEGIN erases the region it is given
            esp.flash_begin(board["flash_size"], 0, logging=False)
    sink.event("writing", 0, len(image))
    kwargs = {}
    if "compress" in opts:
        kwargs["compress" if opts["compress"] else "no_compress"] = True
    write_flash(esp, [(board["image_offset"], image)], flash_size="keep", **kwargs)
    sink.event("resetting")
    reset_chip(esp, opts["after"])


def flash_port(board, port, image, *, erase=False, baud=None, sink=None, esptool_options=None):
    """Flash `image` (bytes, already checked for `board`) to the board on `port`, holding the
    port's lock (host_tools.locks) throughout.

    Returns a FlashResult; raises EdgeshadowError for anything that stops the flash.
    esptool_options override connection_options(port): before, after, stub, compress.
    """
    opts = {**connection_options(port), **(esptool_options or {})}
    sink = sink or _Sink(port, None)
    t0 = time.monotonic()
    check_serial_port(port)
    with port_lock(port):
        esp = _connect(board, port, opts, sink)
        try:
            esp, chip, mac = _check_chip(esp, board, port, opts, baud or board["baud"], sink)
            _write(esp, board, image, erase, opts, sink)
        except (FatalError, NotImplementedInROMError, serial.SerialException, OSError) as e:
            raise EdgeshadowError(f"flashing {port} failed: {str(e).splitlines()[0]}")
        finally:
            try:
                esp._port.close()
            except Exception:
                pass
    seconds = time.monotonic() - t0
    sink.event("done")
    return FlashResult(port, True, f"ok: {len(image)} bytes at 0x{board['image_offset']:X} "
                       f"in {seconds:.1f} s", chip=chip, mac=mac, bytes_written=len(image),
                       seconds=seconds)


# -- several boards ----------------------------------------------------------------------------
def read_firmware(path):
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EdgeshadowError(f"firmware file {path} does not exist")
    except OSError as e:
        raise EdgeshadowError(f"cannot read firmware file {path}: {e.strerror}")


def read_checked_image(board, firmware):
    """The bytes of `firmware` (a path), checked for `board`; EdgeshadowError naming the problem."""
    image = read_firmware(firmware)
    check_image_for_board(image, board, source=Path(firmware).name)
    return image


def flash_boards(board, ports, firmware, *, erase=False, baud=None, on_event=None,
                 esptool_options=None):
    """Check `firmware` (a path) for `board`, then flash it to every port in parallel.

    The image is checked once before any port is opened (EdgeshadowError if it does not fit the
    board); each port then gets its own FlashResult, in the order given. on_event(port, stage,
    done, total) reports progress from the worker threads.
    """
    if not ports:
        raise EdgeshadowError("no port given: pass --port at least once")
    dupes = sorted({p for p in ports if list(ports).count(p) > 1})
    if dupes:
        raise EdgeshadowError(f"port {dupes[0]} is given more than once")
    image = read_checked_image(board, firmware)

    log = _ThreadLog()

    def one(port):
        sink = _Sink(port, on_event)
        log.bind(sink)
        try:
            return flash_port(board, port, image, erase=erase, baud=baud, sink=sink,
                              esptool_options=esptool_options)
        except EdgeshadowError as e:
            sink.event("failed")
            return FlashResult(port, False, str(e), exit_code=e.exit_code)
        except Exception as e:   # a bug or an unexpected esptool error must not hide other boards
            sink.event("failed")
            return FlashResult(port, False, f"unexpected error: {type(e).__name__}: {e}",
                               exit_code=EXIT_FAILED)

    with _log_lock:
        previous = EspLog.instance
        EspLog.instance = log
        try:
            with ThreadPoolExecutor(max_workers=len(ports)) as pool:
                return list(pool.map(one, ports))
        finally:
            EspLog.instance = previous
