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


def measure(i2c, address, cmd, wait_ms, buf):
    """Send cmd, wait, read T and RH with their CRCs into buf (6 bytes): ((t_raw, rh_raw), "ok"),
    or (None, status) on a bus error or a CRC mismatch."""
    try:
        i2c.writeto(address, cmd)
        sleep_ms(wait_ms)
        i2c.readfrom_into(address, buf)
    except OSError as e:
        return None, oserror_status(e)
    t_raw = word(buf, 0)
    rh_raw = word(buf, 3)
    if t_raw < 0 or rh_raw < 0:
        return None, "crc"
    return (t_raw, rh_raw), "ok"
