# SHT30/31/35 temperature and humidity over I2C (Sensirion datasheet, version 6 2019).
# Single-shot measurement without clock stretching: write the command, wait, read 6 bytes
# (T msb, T lsb, CRC, RH msb, RH lsb, CRC).
from drivers.sensirion import SHT

# single shot, clock stretching disabled, per repeatability; datasheet max duration + margin (ms)
_COMMANDS = {"high": b"\x24\x00", "medium": b"\x24\x0b", "low": b"\x24\x16"}
_WAIT_MS = {"high": 16, "medium": 7, "low": 5}


class SHT3x(SHT):
    def __init__(self, i2c, address=0x44, repeatability="high"):
        if repeatability not in _COMMANDS:
            raise ValueError("repeatability must be high, medium or low")
        super().__init__(i2c, address, _COMMANDS[repeatability], _WAIT_MS[repeatability])

    def convert(self, t_raw, rh_raw):
        return -45.0 + 175.0 * t_raw / 65535.0, 100.0 * rh_raw / 65535.0
