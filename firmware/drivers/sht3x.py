# SHT30/31/35 temperature and humidity over I2C (Sensirion datasheet, version 6 2019).
# Single-shot measurement without clock stretching: write the command, wait, read 6 bytes
# (T msb, T lsb, CRC, RH msb, RH lsb, CRC).
from compat import const

from drivers.sensirion import measure

_MEAS_HIGH = const(0x2400)    # single shot, clock stretching disabled, high repeatability
_MEAS_MEDIUM = const(0x240B)
_MEAS_LOW = const(0x2416)
_SOFT_RESET = const(0x30A2)
_WAIT_MS = {"high": 16, "medium": 7, "low": 5}    # datasheet max measurement duration + margin
_COMMANDS = {"high": _MEAS_HIGH, "medium": _MEAS_MEDIUM, "low": _MEAS_LOW}


class SHT3x:
    QUANTITIES = ("temperature", "humidity")
    RANGES = ((-40.0, 125.0), (0.0, 100.0))

    def __init__(self, i2c, address=0x44, repeatability="high"):
        if repeatability not in _COMMANDS:
            raise ValueError("repeatability must be high, medium or low")
        self.i2c = i2c
        self.address = address
        command = _COMMANDS[repeatability]
        self._cmd = bytes((command >> 8, command & 0xFF))
        self._wait_ms = _WAIT_MS[repeatability]
        self._buf = bytearray(6)

    def read(self):
        raw, status = measure(self.i2c, self.address, self._cmd, self._wait_ms, self._buf)
        if raw is None:
            return None, status
        t_raw, rh_raw = raw
        return (-45.0 + 175.0 * t_raw / 65535.0, 100.0 * rh_raw / 65535.0), "ok"
