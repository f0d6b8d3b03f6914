# Sensirion's CRC-8 (SHT3x, SHT4x, SGP, SCD): polynomial 0x31, init 0xFF, no reflection, no final
# XOR. The datasheet's example: CRC(0xBEEF) = 0x92. And the measurement both SHT families share.
from compat import sleep_ms
from drivers import oserror_status


def crc8(buf, start=0, end=2):
    crc = 0xFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ 0x31) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


def word(buf, i):
    """The 16-bit word at buf[i:i+2] when buf[i+2] is its CRC, else -1."""
    if crc8(buf, i, i + 2) != buf[i + 2]:
        return -1
    return (buf[i] << 8) | buf[i + 1]


class SHT:
    """What the SHT3x and SHT4x share: send one command, wait, read T and RH with their CRCs (6
    bytes); a subclass says which command and wait, and converts the raw words (convert)."""
    QUANTITIES = ("temperature", "humidity")
    RANGES = ((-40.0, 125.0), (0.0, 100.0))

    def __init__(self, i2c, address, cmd, wait_ms):
        self.i2c = i2c
        self.address = address
        self._cmd = cmd
        self._wait_ms = wait_ms
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
        return self.convert(t_raw, rh_raw), "ok"
