# SHT40/41/45 temperature and humidity over I2C (Sensirion datasheet, version 6.6 2023).
# One command byte, wait, read 6 bytes (T msb, T lsb, CRC, RH msb, RH lsb, CRC).
from drivers.sensirion import SHT

_COMMANDS = {"high": b"\xfd", "medium": b"\xf6", "low": b"\xe0"}
_WAIT_MS = {"high": 10, "medium": 5, "low": 2}


class SHT4x(SHT):
    def __init__(self, i2c, address=0x44, precision="high"):
        if precision not in _COMMANDS:
            raise ValueError("precision must be high, medium or low")
        super().__init__(i2c, address, _COMMANDS[precision], _WAIT_MS[precision])

    def convert(self, t_raw, rh_raw):
        rh = -6.0 + 125.0 * rh_raw / 65535.0
        # The datasheet: crop RH to 0..100 (the formula spans -6..119 %RH).
        rh = 0.0 if rh < 0.0 else (100.0 if rh > 100.0 else rh)
        return -45.0 + 175.0 * t_raw / 65535.0, rh
