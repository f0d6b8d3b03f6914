# The virtual board's bootstrap, run by the MicroPython unix port (`micropython -i _boot_sim.py`).
# It plays the part of the ESP32 port's C start-up: hardware stand-ins, the flash filesystem at /,
# boot.py, then main.py (only when the board was not soft-reset from the raw REPL, as on a board),
# then the REPL. The supervisor (host_tools/sim/supervisor.py) holds input until "ready".
import sys
import os
import time
import vfs

import _simenv
import machine
import network
import esp32
import ntptime

try:
    import simhw
except ImportError as _e:
    if "simhw" not in str(_e):
        raise
    simhw = None



class _Flash:
    """The flash filesystem: VfsPosix on the board's flash folder, with two fixes that make it
    behave as the ESP32's LittleFS does: rename() with absolute paths (VfsPosix joins both paths
    in one buffer, so the second overwrites the first) and sizes in ilistdir() (mpremote ls)."""

    def __init__(self, root):
        self._p = vfs.VfsPosix(root)
        for name in ("open", "stat", "statvfs", "mkdir", "rmdir", "remove", "chdir", "getcwd"):
            setattr(self, name, getattr(self._p, name))

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        prefix = "" if path in ("", ".") else path.rstrip("/") + "/"
        for e in self._p.ilistdir(path):
            size = self._p.stat(prefix + e[0])[6] if e[1] == 0x8000 else 0
            yield (e[0], e[1], e[2], size)

    def rename(self, old, new):
        if old[:1] != "/" and new[:1] != "/":
            return self._p.rename(old, new)
        cwd = self._p.getcwd() or "/"
        base = cwd.strip("/")
        rel = lambda p: p.lstrip("/") if p[:1] == "/" else (base + "/" + p if base else p)
        self._p.chdir("/")
        try:
            self._p.rename(rel(old), rel(new))
        finally:
            self._p.chdir(cwd)


if simhw is not None:
    try:
        simhw.init(_simenv.SIM_DIR)
    except Exception as _e:
        print("simhw: hardware simulation failed to start:")
        sys.print_exception(_e)

vfs.umount("/")
vfs.mount(_Flash(os.getenv("EDGESHADOW_FLASH_DIR")), "/")
os.chdir("/")
sys.path[:] = ["", "/lib", ".frozen"]
try:  # a ROMFS partition (vfs.rom_ioctl), mounted at /rom by the runtime as by the ESP32 port
    os.stat("/rom")
    sys.path += ["/rom", "/rom/lib"]
except OSError:
    pass
for _m in ("_boot_sim", "_simenv"):
    sys.modules.pop(_m, None)


def _run(_path, _mode):
    try:
        os.stat(_path)
    except OSError:
        return
    try:
        with open(_path) as _f:
            _code = compile(_f.read(), _path[1:], "exec")
        if _mode != "raw":
            _simenv.tell("ready")
        exec(_code, globals())
    except SystemExit as _e:
        # On a board, SystemExit out of boot.py/main.py (sys.exit(), machine.reset()) ends the
        # run; the unix port's -i would go on to the REPL instead, so ask the supervisor.
        _code = _e.args[0] if _e.args else 0
        _simenv.tell("exit=%d" % (_code if isinstance(_code, int) else 1))
        while True:
            time.sleep(1)
    except BaseException as _e:
        sys.print_exception(_e)


def _pin_board_heap():
    """The unix port was given the board's GC heap plus room for these stand-ins, which are C
    modules (no GC heap) on a board. Pin what they left beyond the board's heap in one block, so
    the firmware has the board's heap free, and tell the board layer how much is not its own."""
    import gc
    want = int(os.getenv("EDGESHADOW_BOARD_HEAP") or 0)
    gc.collect()
    spare = gc.mem_free() - want
    if not want or spare < 64:
        if want:
            print("sim: the stand-ins left %d bytes free, less than the board's %d: raise "
                  "host_tools.sim.runtimes.STANDIN_HEAP" % (gc.mem_free(), want))
        return None
    block = bytearray(spare - 32)  # its header and rounding take the rest
    gc.collect()
    machine.HEAP_RESERVED = gc.mem_alloc()
    return block


_ballast = _pin_board_heap()
_run("/boot.py", "raw")
if _simenv.MODE == "raw":
    _simenv.tell("ready")
else:
    _run("/main.py", _simenv.MODE)
    # A Ctrl-C (SIGINT) that lands while the unix port holds its qstr lock (inside an import or a
    # compile) leaves the lock taken, and the next compile waits on it forever: on the first
    # command a host sends, mid-paste. Compile something now, so that hang happens here, before
    # the REPL answers, where the supervisor's hang check resets the board and the host's
    # Ctrl-C is simply tried again.
    compile("_", "_", "eval")
    _simenv.tell("ready")
del _run, _simenv, _m
