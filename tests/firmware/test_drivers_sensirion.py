# SHT3x / SHT4x: the datasheet CRC, conversions, and failures as None + status, against the
# virtual board's register models and small fake buses.
from _helpers import approx
from _simhw_path import world
from drivers.sensirion import crc8, word
from drivers.sht3x import SHT3x
from drivers.sht4x import SHT4x


def test_crc8_datasheet_example():
    assert crc8(b"\xbe\xef") == 0x92        # SHT3x datasheet 4.12, SHT4x datasheet 4.4
    assert crc8(b"\x00\x00") == 0x81
    assert word(b"\xbe\xef\x92", 0) == 0xBEEF
    assert word(b"\xbe\xef\x93", 0) == -1


class FixedBus:
    """Answers every read with fixed bytes; records writes."""

    def __init__(self, reply):
        self.reply = reply
        self.writes = []

    def writeto(self, addr, buf, stop=True):
        self.writes.append((addr, bytes(buf)))
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        buf[:] = self.reply


def _frame(t_raw, rh_raw):
    a = bytes((t_raw >> 8, t_raw & 0xFF))
    b = bytes((rh_raw >> 8, rh_raw & 0xFF))
    return a + bytes((crc8(a),)) + b + bytes((crc8(b),))


def test_sht3x_conversion_from_datasheet_formula():
    bus = FixedBus(_frame(0x6666, 0x8000))
    values, status = SHT3x(bus, 0x44).read()
    assert status == "ok"
    assert approx(values[0], -45.0 + 175.0 * 0x6666 / 65535.0)
    assert approx(values[1], 100.0 * 0x8000 / 65535.0)
    assert bus.writes == [(0x44, b"\x24\x00")]     # single shot, high repeatability, no stretching


def test_sht4x_crops_humidity_to_100():
    values, status = SHT4x(FixedBus(_frame(0x6666, 0xFFFF))).read()
    assert status == "ok" and values[1] == 100.0


def test_sht3x_against_register_model():
    hw = world({"temperature": 23.5, "humidity": 41.0})
    values, status = SHT3x(hw.i2c_bus(0), 0x44).read()
    assert status == "ok"
    assert abs(values[0] - 23.5) < 0.01 and abs(values[1] - 41.0) < 0.01


def test_sht4x_against_register_model():
    hw = world({"temperature": -12.25, "humidity": 77.0})
    values, status = SHT4x(hw.i2c_bus(0), 0x46).read()
    assert status == "ok"
    assert abs(values[0] + 12.25) < 0.01 and abs(values[1] - 77.0) < 0.01


def test_crc_corruption_is_none_plus_crc():
    hw = world(faults=[{"kind": "crc", "address": 0x44, "from_s": 0, "probability": 1.0}])
    assert SHT3x(hw.i2c_bus(0), 0x44).read() == (None, "crc")
    assert SHT4x(hw.i2c_bus(0), 0x46).read()[1] == "ok"     # only the faulty chip


def test_disconnected_and_timeout():
    hw = world(faults=[{"kind": "disconnected", "address": 0x44, "from_s": 0},
                       {"kind": "timeout", "address": 0x46, "from_s": 0}])
    assert 0x44 not in hw.i2c_bus(0).scan()
    assert SHT3x(hw.i2c_bus(0), 0x44).read() == (None, "disconnected")
    assert SHT4x(hw.i2c_bus(0), 0x46).read() == (None, "timeout")


def test_reading_too_early_is_refused_by_the_model():
    hw = world()
    bus = hw.i2c_bus(0)
    bus.writeto(0x44, b"\x24\x00")
    try:
        bus.readfrom_into(0x44, bytearray(6))    # no wait: the chip NACKs
    except OSError:
        return
    raise AssertionError("model answered before its conversion time")
