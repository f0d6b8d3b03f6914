# Platform differences, decided once for every firmware module: ticks, sleep_ms and const on CPython, unix
# seconds on every epoch, and milliseconds since boot that stay right past the tick period.
#
# On an ESP32, ticks_ms wraps every 2^30 ms and ticks_diff is valid within +-2^29 ms (6.2 days);
# time.time() is an int counting from 2000-01-01. The unix ports and CPython count from 1970.
import time

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from time import ticks_ms, ticks_us, ticks_add, ticks_diff, sleep_ms
except ImportError:  # CPython
    def sleep_ms(ms):
        time.sleep(ms / 1000)

    def ticks_ms():
        return time.monotonic_ns() // 1000000

    def ticks_us():
        return time.monotonic_ns() // 1000

    def ticks_add(t, d):
        return t + d

    def ticks_diff(a, b):
        return a - b

# 946684800 s from 1970-01-01 to 2000-01-01: added where the port counts from 2000.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


def unix_time():
    """Whole seconds since 1970-01-01 UTC, exact on every port (no float32 rounding)."""
    try:
        return time.time_ns() // 1000000000 + EPOCH_OFFSET
    except AttributeError:
        return int(time.time()) + EPOCH_OFFSET


class Elapsed:
    """Milliseconds since it was made, from wrapping ticks: right for any span as long as ms() is
    called at least once every 2^29 ms (6.2 days); the sampler calls it every interval."""

    def __init__(self, ticks=ticks_ms, diff=ticks_diff):
        self._ticks = ticks
        self._diff = diff
        self._last = ticks()
        self._ms = 0

    def ms(self):
        t = self._ticks()
        self._ms += self._diff(t, self._last)
        self._last = t
        return self._ms


uptime = Elapsed()  # made at the first import, early in boot


def unload(*names):
    """Forget modules that are needed only now and then (config validation, TLS set-up), so their
    code leaves the GC heap until the next import: on a board, imported code lives in RAM."""
    import sys
    for name in names:
        sys.modules.pop(name, None)
        pkg, _, attr = name.rpartition(".")
        parent = sys.modules.get(pkg) if pkg else None
        if parent is not None and attr in getattr(parent, "__dict__", ()):
            try:
                delattr(parent, attr)
            except (AttributeError, TypeError):
                pass
