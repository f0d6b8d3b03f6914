# Register-level models of the I2C chips on the virtual board: SHT3x, SHT4x, BME280.
# Each model answers the chip's real protocol (commands, registers, CRC, conversion times) from the
# physical values a `world` gives it: world.value(name) -> float, world.fault(address, kind) ->
# fault dict or None, world.rand() -> 0..1. Runs on MicroPython and CPython.
import math

try:
    from time import ticks_ms, ticks_diff
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

_ETIMEDOUT = 110
_EIO = 5


def crc8(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _clamp16(x):
    x = int(x + 0.5)
    return 0 if x < 0 else (65535 if x > 65535 else x)


class _Chip:
    def __init__(self, world, address, signals):
        self.world = world
        self.address = address
        self.signals = signals    # quantity -> world signal name

    def _value(self, quantity, default):
        name = self.signals.get(quantity, quantity)
        v = self.world.value(name)
        return default if v is None else v

    def _check_timeout(self):
        if self.world.fault(self.address, "timeout"):
            raise OSError(_ETIMEDOUT)


class _SensirionChip(_Chip):
    """Command in, 6 bytes out: T msb, T lsb, CRC, RH msb, RH lsb, CRC."""
    MEASURE = {}     # command -> conversion time in ms

    def __init__(self, world, address, signals):
        _Chip.__init__(self, world, address, signals)
        self._out = b""
        self._ready_at = None

    def _words(self, a, b):
        out = bytearray(6)
        out[0], out[1] = a >> 8, a & 0xFF
        out[2] = crc8(out[0:2])
        out[3], out[4] = b >> 8, b & 0xFF
        out[5] = crc8(out[3:5])
        if self.world.fault(self.address, "crc"):
            out[5 if self.world.rand() < 0.5 else 2] ^= 0x5A
        return bytes(out)

    def _command(self, cmd):
        ms = self.MEASURE.get(cmd)
        if ms is None:
            return self.other_command(cmd)
        t = self._value("temperature", 25.0)
        rh = self._value("humidity", 50.0)
        self._out = self.encode(t, rh)
        self._ready_at = ticks_ms() + int(ms + 0.999)

    def read(self, n):
        self._check_timeout()
        if self._ready_at is None or ticks_diff(ticks_ms(), self._ready_at) < 0:
            raise OSError(_EIO)    # the chip NACKs its address until a measurement is ready
        out, self._out, self._ready_at = self._out, b"", None
        return out[:n] + bytes(max(0, n - len(out)))


class SHT3x(_SensirionChip):
    # Single shot: clock stretching off (0x24xx) and on (0x2Cxx); datasheet max durations.
    MEASURE = {0x2400: 15.5, 0x240B: 6.5, 0x2416: 4.5, 0x2C06: 15.5, 0x2C0D: 6.5, 0x2C10: 4.5}

    def write(self, buf):
        self._check_timeout()
        if len(buf) != 2:
            raise OSError(_EIO)
        self._command((buf[0] << 8) | buf[1])

    def encode(self, t, rh):
        return self._words(_clamp16((t + 45.0) * 65535.0 / 175.0), _clamp16(rh * 65535.0 / 100.0))

    def other_command(self, cmd):
        if cmd == 0xF32D:         # read status register: 2 bytes + CRC
            self._out = bytes((0, 0, crc8(b"\x00\x00")))
            self._ready_at = ticks_ms()
        elif cmd in (0x30A2, 0x3041):    # soft reset, clear status
            self._out, self._ready_at = b"", None
        else:
            raise OSError(_EIO)


class SHT4x(_SensirionChip):
    MEASURE = {0xFD: 8.3, 0xF6: 4.5, 0xE0: 1.7}

    def write(self, buf):
        self._check_timeout()
        if len(buf) != 1:
            raise OSError(_EIO)
        self._command(buf[0])

    def encode(self, t, rh):
        return self._words(_clamp16((t + 45.0) * 65535.0 / 175.0),
                           _clamp16((rh + 6.0) * 65535.0 / 125.0))

    def other_command(self, cmd):
        if cmd == 0x89:           # serial number
            self._out = self._words(0x1234, 0x5678)
            self._ready_at = ticks_ms() + 1
        elif cmd == 0x94:         # soft reset
            self._out, self._ready_at = b"", None
        else:
            raise OSError(_EIO)


# A real BME280's trimming parameters (T and P are the BMP280 datasheet's example chip).
BME280_TRIM = {"T": (27504, 26435, -1000),
               "P": (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000),
               "H": (75, 362, 0, 313, 50, 30)}


def bme280_calibration_bytes(trim=BME280_TRIM):
    """The 26 bytes at 0x88 and the 7 bytes at 0xE1 holding `trim`."""
    a = bytearray(26)
    words = list(trim["T"]) + list(trim["P"])
    for i, w in enumerate(words):
        a[2 * i] = w & 0xFF
        a[2 * i + 1] = (w >> 8) & 0xFF
    h1, h2, h3, h4, h5, h6 = trim["H"]
    a[25] = h1
    b = bytearray(7)
    b[0], b[1] = h2 & 0xFF, (h2 >> 8) & 0xFF
    b[2] = h3
    b[3] = (h4 >> 4) & 0xFF
    b[4] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
    b[5] = (h5 >> 4) & 0xFF
    b[6] = h6 & 0xFF
    return a, b


def _t_fine_double(adc_t, t):
    t1, t2, t3 = t
    v1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
    x = adc_t / 131072.0 - t1 / 8192.0
    return v1 + x * x * t3


def _p_double(adc_p, t_fine, p):
    # The datasheet's floating-point compensation (an implementation apart from the driver's).
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = p
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * p6 / 32768.0 + v1 * p5 * 2.0
    v2 = v2 / 4.0 + p4 * 65536.0
    v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * p1
    pr = 1048576.0 - adc_p
    pr = (pr - v2 / 4096.0) * 6250.0 / v1
    return pr + (p9 * pr * pr / 2147483648.0 + pr * p8 / 32768.0 + p7) / 16.0


def _h_double(adc_h, t_fine, h):
    h1, h2, h3, h4, h5, h6 = h
    x = t_fine - 76800.0
    x = (adc_h - (h4 * 64.0 + h5 / 16384.0 * x)) * \
        (h2 / 65536.0 * (1.0 + h6 / 67108864.0 * x * (1.0 + h3 / 67108864.0 * x)))
    return x * (1.0 - h1 * x / 524288.0)


def _invert(fn, target, lo, hi, increasing=True):
    """The integer in [lo, hi] whose fn value is nearest target (fn monotonic)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (fn(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(fn(lo) - target) <= abs(fn(hi) - target) else hi


class BME280(_Chip):
    _ID = 0xD0
    _RESET = 0xE0
    _CTRL_HUM = 0xF2
    _STATUS = 0xF3
    _CTRL_MEAS = 0xF4
    _DATA = 0xF7

    def __init__(self, world, address, signals, trim=BME280_TRIM):
        _Chip.__init__(self, world, address, signals)
        self.trim = trim
        self.regs = bytearray(256)
        self._ptr = 0
        self._busy_until = None
        self._reset()

    def _reset(self):
        regs = self.regs
        for i in range(256):
            regs[i] = 0
        a, b = bme280_calibration_bytes(self.trim)
        regs[0x88:0x88 + 26] = a
        regs[0xE1:0xE1 + 7] = b
        regs[self._ID] = 0x60
        regs[0xF7:0xFF] = bytes((0x80, 0, 0, 0x80, 0, 0, 0x80, 0))    # skipped-measurement values

    def write(self, buf):
        self._check_timeout()
        if not buf:
            return
        self._ptr = buf[0]
        # Register writes come as (address, value) pairs; a lone address sets the read pointer.
        for i in range(0, len(buf) - 1, 2):
            self._write_reg(buf[i], buf[i + 1])

    def _write_reg(self, reg, value):
        if reg == self._RESET:
            if value == 0xB6:
                self._reset()
            return
        if reg in (self._CTRL_HUM, self._CTRL_MEAS, 0xF5):
            self.regs[reg] = value
            if reg == self._CTRL_MEAS and value & 0x03 in (1, 2):
                self._measure()
                if value & 0x03 != 3:
                    self.regs[reg] = value & 0xFC    # forced mode returns to sleep

    def _measure(self):
        ctrl = self.regs[self._CTRL_MEAS]
        osrs_t = (ctrl >> 5) & 7
        osrs_p = (ctrl >> 2) & 7
        osrs_h = self.regs[self._CTRL_HUM] & 7
        t = self._value("temperature", 25.0)
        rh = self._value("humidity", 50.0)
        pa = self._value("pressure", 101325.0)
        trim = self.trim
        adc_t = _invert(lambda a: _t_fine_double(a, trim["T"]) / 5120.0, t, 0, 0xFFFFF) \
            if osrs_t else 0x80000
        t_fine = _t_fine_double(adc_t, trim["T"])
        adc_p = _invert(lambda a: _p_double(a, t_fine, trim["P"]), pa, 0, 0xFFFFF, False) \
            if osrs_p and osrs_t else 0x80000
        adc_h = _invert(lambda a: _h_double(a, t_fine, trim["H"]), rh, 0, 0xFFFF) \
            if osrs_h and osrs_t else 0x8000
        r = self.regs
        r[0xF7], r[0xF8], r[0xF9] = adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4
        r[0xFA], r[0xFB], r[0xFC] = adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4
        r[0xFD], r[0xFE] = adc_h >> 8, adc_h & 0xFF
        n = sum(1 << (o - 1) for o in (osrs_t, osrs_p, osrs_h) if o)
        ms = 1.25 + 2.3 * n + 0.575 * ((osrs_p > 0) + (osrs_h > 0))
        self._busy_until = ticks_ms() + int(math.ceil(ms))

    def read(self, n):
        self._check_timeout()
        busy = self._busy_until is not None and ticks_diff(ticks_ms(), self._busy_until) < 0
        out = bytearray(n)
        for i in range(n):
            reg = (self._ptr + i) & 0xFF
            out[i] = (0x08 if busy else 0) if reg == self._STATUS else self.regs[reg]
        self._ptr = (self._ptr + n) & 0xFF
        return bytes(out)


CHIPS = {"sht3x": SHT3x, "sht4x": SHT4x, "bme280": BME280}
