# SHT40/41/45 temperature and humidity over I2C (Sensirion datasheet, version 6.6 2023).
# One command byte, wait, read 6 bytes (T msb, T lsb, CRC, RH msb, RH lsb, CRC).
from compat import const

from drivers.sensirion import measure

_MEAS_HIGH = const(0xFD)
_MEAS_MEDIUM = const(0xF6)
_MEAS_LOW = const(0xE0)
_COMMANDS = {"high": _MEAS_HIGH, "medium": _MEAS_MEDIUM, "low": _MEAS_LOW}
_WAIT_MS = {"high": 10, "medium": 5, "low": 2}


class SHT4x:
    QUANTITIES = ("temperature", "humidity")
    RANGES = ((-40.0, 125.0), (0.0, 100.0))

    def __init__(self, i2c, address=0x44, precision="high"):
        if precision not in _COMMANDS:
            raise ValueError("precision must be high, medium or low")
        self.i2c = i2c
        self.address = address
        self._cmd = bytes((_COMMANDS[precision],))
        self._wait_ms = _WAIT_MS[precision]
        self._buf = bytearray(6)

    def read(self):
        raw, status = measure(self.i2c, self.address, self._cmd, self._wait_ms, self._buf)
        if raw is None:
            return None, status
        t_raw, rh_raw = raw
        rh = -6.0 + 125.0 * rh_raw / 65535.0
        # The datasheet: crop RH to 0..100 (the formula spans -6..119 %RH).
        rh = 0.0 if rh < 0.0 else (100.0 if rh > 100.0 else rh)
        return (-45.0 + 175.0 * t_raw / 65535.0, rh), "ok"
