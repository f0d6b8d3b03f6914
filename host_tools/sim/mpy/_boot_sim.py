# The virtual board's bootstrap, run by the MicroPython unix port (`micropython -i _boot_sim.py`).
# It plays the part of the ESP32 port's C start-up: hardware stand-ins, the flash filesystem at /,
# boot.py, then main.py (only when the board was not soft-reset from the raw REPL, as on a board),
# then the REPL. The supervisor (host_tools/sim/supervisor.py) holds input until "ready".
import sys
import os
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

if simhw is not None:
    try:
        simhw.init(_simenv.SIM_DIR)
    except Exception as _e:
        print("simhw: hardware simulation failed to start:")
        sys.print_exception(_e)

vfs.umount("/")
vfs.mount(vfs.VfsPosix(os.getenv("EDGESHADOW_FLASH_DIR")), "/")
os.chdir("/")
sys.path[:] = ["", "/lib", ".frozen"]
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
    except SystemExit:
        raise
    except BaseException as _e:
        sys.print_exception(_e)


_run("/boot.py", "raw")
if _simenv.MODE == "raw":
    _simenv.tell("ready")
else:
    _run("/main.py", _simenv.MODE)
    _simenv.tell("ready")
del _run, _simenv, _m
