# BME280: the datasheet's compensation (worked example), calibration parsing, the driver against
# the register model, and failures.
from _simhw_path import simhw_chips, world
from drivers import bme280
from drivers.bme280 import BME280

# The datasheet's worked example (BMP280 datasheet 3.12; the BME280 uses the same T and P code).
T = (27504, 26435, -1000)
P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)


def test_temperature_datasheet_example():
    t, t_fine = bme280.compensate_t(519888, T)
    assert t_fine == 128422
    assert t == 2508                       # 25.08 degC


def test_pressure_datasheet_example():
    _, t_fine = bme280.compensate_t(519888, T)
    p = bme280.compensate_p(415148, t_fine, P) / 256.0
    assert abs(p - 100653.27) < 0.03, p     # datasheet: 100653.27 Pa


def test_humidity_integer_matches_datasheet_float_formula():
    h = simhw_chips.BME280_TRIM["H"]
    for adc_h, adc_t in ((30000, 519888), (22000, 500000), (36000, 540000)):
        _, t_fine = bme280.compensate_t(adc_t, T)
        integer = bme280.compensate_h(adc_h, t_fine, h) / 1024.0
        double = simhw_chips._h_double(adc_h, t_fine, h)
        assert abs(integer - double) < 0.01, (integer, double)


def test_calibration_bytes_round_trip():
    a, b = simhw_chips.bme280_calibration_bytes()
    t, p, h = bme280.parse_calibration(a, b)
    assert t == simhw_chips.BME280_TRIM["T"]
    assert p == simhw_chips.BME280_TRIM["P"]
    assert h == simhw_chips.BME280_TRIM["H"]


def test_driver_against_register_model():
    hw = world({"temperature": 31.7, "humidity": 63.0, "pressure": 98765.0})
    values, status = BME280(hw.i2c_bus(0), 0x76).read()
    assert status == "ok", status
    t, rh, p = values
    assert abs(t - 31.7) < 0.02 and abs(rh - 63.0) < 0.05 and abs(p - 98765.0) < 2.0, values


def test_failures():
    hw = world(faults=[{"kind": "disconnected", "address": 0x76, "from_s": 0}])
    assert BME280(hw.i2c_bus(0), 0x76).read() == (None, "disconnected")
    # Something else at the address (a BMP280 answers 0x58 for the chip id): not read as a BME280.
    assert BME280(_WrongChip(), 0x76).read() == (None, "error")


class _WrongChip:
    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        for i in range(len(buf)):
            buf[i] = 0x58    # a BMP280's id
