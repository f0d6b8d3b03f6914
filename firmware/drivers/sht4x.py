# SHT40/41/45 temperature and humidity over I2C (Sensirion datasheet, version 6.6 2023).
# One command byte, wait, read 6 bytes (T msb, T lsb, CRC, RH msb, RH lsb, CRC).
from drivers import sleep_ms

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from drivers import oserror_status
from drivers.sensirion import word

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
        buf = self._buf
        try:
            self.i2c.writeto(self.address, self._cmd)
            sleep_ms(self._wait_ms)
            self.i2c.readfrom_into(self.address, buf)
        except OSError as e:
            return None, oserror_status(e)
        t_raw = word(buf, 0)
        rh_raw = word(buf, 3)
        if t_raw < 0 or rh_raw < 0:
            return None, "crc"
        rh = -6.0 + 125.0 * rh_raw / 65535.0
        # The datasheet: crop RH to 0..100 (the formula spans -6..119 %RH).
        rh = 0.0 if rh < 0.0 else (100.0 if rh > 100.0 else rh)
        return (-45.0 + 175.0 * t_raw / 65535.0, rh), "ok"
