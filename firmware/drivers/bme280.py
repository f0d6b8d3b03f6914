# Bosch BME280 temperature, humidity and pressure over I2C (datasheet BST-BME280-DS002, rev 1.23).
# Forced mode: one measurement per read(), then the chip sleeps. Compensation is the datasheet's
# integer code (4.2.3: int32 temperature and humidity, int64 pressure): exact on MicroPython, whose
# floats are single precision on the ESP32 and would lose the pressure formula's low digits.
from compat import const, sleep_ms

from drivers import oserror_status

_REG_CALIB_A = const(0x88)    # 26 bytes: dig_T1..dig_P9, (0xA0 unused), dig_H1 at 0xA1
_REG_CALIB_B = const(0xE1)    # 7 bytes: dig_H2..dig_H6
_REG_ID = const(0xD0)
_CHIP_ID = const(0x60)
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_DATA = const(0xF7)       # 8 bytes: press[3], temp[3], hum[2]
_STATUS_MEASURING = const(0x08)
_MODE_FORCED = const(0x01)
_SKIPPED_20 = const(0x80000)  # a skipped (or never run) temperature/pressure measurement
_SKIPPED_16 = const(0x8000)
_OSRS = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}


def _s16(lo, hi):
    v = lo | (hi << 8)
    return v - 65536 if v > 32767 else v


def _s12(v):
    return v - 4096 if v > 2047 else v


def _tdiv(a, b):
    """C integer division (truncates toward zero); Python's // floors."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def parse_calibration(a, b):
    """Trimming parameters from the 26 bytes at 0x88 and the 7 bytes at 0xE1."""
    t = (a[0] | (a[1] << 8), _s16(a[2], a[3]), _s16(a[4], a[5]))
    p = [a[6] | (a[7] << 8)]
    for i in range(8, 24, 2):
        p.append(_s16(a[i], a[i + 1]))
    h6 = b[6] - 256 if b[6] > 127 else b[6]
    h = (a[25], _s16(b[0], b[1]), b[2], _s12((b[3] << 4) | (b[4] & 0x0F)),
         _s12((b[5] << 4) | (b[4] >> 4)), h6)
    return t, tuple(p), h


def compensate_t(adc_t, t):
    """(temperature in 0.01 degC, t_fine): the datasheet's BME280_compensate_T_int32."""
    t1, t2, t3 = t
    var1 = ((((adc_t >> 3) - (t1 << 1))) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(adc_p, t_fine, p):
    """Pressure in Pa as Q24.8 (value / 256 = Pa): BME280_compensate_P_int64. 0 if undefined."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = p
    var1 = t_fine - 128000
    var2 = var1 * var1 * p6
    var2 = var2 + ((var1 * p5) << 17)
    var2 = var2 + (p4 << 35)
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    if var1 == 0:
        return 0    # the datasheet's guard against division by zero
    pr = 1048576 - adc_p
    pr = _tdiv(((pr << 31) - var2) * 3125, var1)
    var1 = (p9 * (pr >> 13) * (pr >> 13)) >> 25
    var2 = (p8 * pr) >> 19
    return ((pr + var1 + var2) >> 8) + (p7 << 4)


def compensate_h(adc_h, t_fine, h):
    """Relative humidity in %RH as Q22.10 (value / 1024 = %RH): bme280_compensate_H_int32."""
    h1, h2, h3, h4, h5, h6 = h
    v = t_fine - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * \
        (((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    v = 0 if v < 0 else v
    v = 419430400 if v > 419430400 else v
    return v >> 12


class BME280:
    QUANTITIES = ("temperature", "humidity", "pressure")
    RANGES = ((-40.0, 85.0), (0.0, 100.0), (30000.0, 110000.0))

    def __init__(self, i2c, address=0x76, oversampling=1):
        if oversampling not in _OSRS:
            raise ValueError("oversampling must be 1, 2, 4, 8 or 16")
        self.i2c = i2c
        self.address = address
        osrs = _OSRS[oversampling]
        self._hum = bytes((osrs,))
        self._meas = bytes(((osrs << 5) | (osrs << 2) | _MODE_FORCED,))
        # Datasheet 9.1: max measurement time 1.25 + 2.3 * (T + P + H oversampling) + 1.15 ms.
        self._wait_ms = int(1.25 + 2.3 * 3 * oversampling + 1.15 + 0.999)
        self._data = bytearray(8)
        self._one = bytearray(1)
        self._calib = None

    def _load_calibration(self):
        self.i2c.readfrom_mem_into(self.address, _REG_ID, self._one)
        if self._one[0] != _CHIP_ID:
            return False
        a = bytearray(26)
        b = bytearray(7)
        self.i2c.readfrom_mem_into(self.address, _REG_CALIB_A, a)
        self.i2c.readfrom_mem_into(self.address, _REG_CALIB_B, b)
        self._calib = parse_calibration(a, b)
        return True

    def read(self):
        try:
            if self._calib is None and not self._load_calibration():
                return None, "error"    # something else answers at this address
            i2c, addr = self.i2c, self.address
            i2c.writeto_mem(addr, _REG_CTRL_HUM, self._hum)   # takes effect at the ctrl_meas write
            i2c.writeto_mem(addr, _REG_CTRL_MEAS, self._meas)
            sleep_ms(self._wait_ms)
            for _ in range(10):
                i2c.readfrom_mem_into(addr, _REG_STATUS, self._one)
                if not self._one[0] & _STATUS_MEASURING:
                    break
                sleep_ms(1)
            else:
                return None, "timeout"
            d = self._data
            i2c.readfrom_mem_into(addr, _REG_DATA, d)
        except OSError as e:
            self._calib = None    # re-read trimming after a reconnect (another chip may answer)
            return None, oserror_status(e)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == _SKIPPED_20:
            return None, "no_data"
        t_cal, p_cal, h_cal = self._calib
        t, t_fine = compensate_t(adc_t, t_cal)
        p = compensate_p(adc_p, t_fine, p_cal) if adc_p != _SKIPPED_20 else 0
        h = compensate_h(adc_h, t_fine, h_cal) if adc_h != _SKIPPED_16 else -1
        return (t / 100.0, h / 1024.0 if h >= 0 else None, p / 256.0 if p else None), "ok"
