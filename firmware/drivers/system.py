# The board's own health: MCU temperature, free heap, CPU frequency, Wi-Fi RSSI, uptime, reset
# cause, boot count and loop utilisation (the share of each sampling interval the firmware spent
# busy, in percent: the board's CPU usage).
#
# Hardware is passed in as callables (the board layer binds them to machine/esp32/network); any of
# them may be None where the chip has no such thing. A callable that fails gives None for its
# quantity, never an exception.
import gc

from compat import uptime


def _call(fn):
    if fn is None:
        return None
    try:
        return fn()
    except Exception:
        return None


class System:
    QUANTITIES = ("mcu_temperature", "free_heap", "cpu_freq", "wifi_rssi", "uptime",
                  "reset_cause", "boot_count", "loop_utilisation")
    RANGES = ((-40.0, 125.0), None, None, (-127, 0), None, None, None, (0.0, 100.0))

    def __init__(self, mcu_temperature=None, freq=None, rssi=None, reset_cause=None,
                 boot_count=None, free_heap=getattr(gc, "mem_free", None)):
        self._mcu_temperature = mcu_temperature
        self._free_heap = free_heap               # None on CPython: no GC heap of its own
        self._freq = freq
        self._rssi = rssi
        self._reset_cause = _call(reset_cause)    # fixed for this boot
        self._boot_count = boot_count
        self.loop_utilisation = None

    def set_loop_utilisation(self, busy_ms, interval_ms):
        """The supervisor reports how long one interval's work took."""
        if interval_ms > 0:
            share = 100.0 * busy_ms / interval_ms
            self.loop_utilisation = 100.0 if share > 100.0 else share

    def read(self):
        return (_call(self._mcu_temperature), _call(self._free_heap),
                _call(self._freq), _call(self._rssi),
                uptime.ms() // 1000, self._reset_cause, self._boot_count,
                self.loop_utilisation), "ok"
