# Sensirion's CRC-8 (SHT3x, SHT4x, SGP, SCD): polynomial 0x31, init 0xFF, no reflection, no final
# XOR. The datasheet's example: CRC(0xBEEF) = 0x92.


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
