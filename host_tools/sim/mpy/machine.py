# Stand-in for the ESP32 `machine` module on the virtual board (MicroPython unix port).
# Values come from the board's simulated hardware (`simhw`, when present); resets go to the
# supervisor, which restarts the firmware as a board would.
import sys
import time

import _simenv

try:
    import simhw
except ImportError as e:
    if "simhw" not in str(e):
        raise
    simhw = None

# The ESP32 port's constant values.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

# Exit codes the supervisor understands (host_tools/sim/supervisor.py).
EXIT_RESET = 90
EXIT_SOFT_RESET = 91
EXIT_DEEPSLEEP = 92

_reset_cause = int(_simenv.read_text("reset_cause", "1") or 1)
_uid = _simenv.read_text("uid", "240ac4000001")
_freq = 160000000
_ENODEV = 19


def reset_cause():
    return _reset_cause


def wake_reason():
    return TIMER_WAKE if _reset_cause == DEEPSLEEP_RESET else 0


def unique_id():
    return bytes(int(_uid[i:i + 2], 16) for i in range(0, len(_uid), 2))


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz


def reset():
    sys.exit(EXIT_RESET)


def soft_reset():
    sys.exit(EXIT_SOFT_RESET)


def deepsleep(ms=0):
    if ms:
        _simenv.tell("sleep=%d" % ms)
    sys.exit(EXIT_DEEPSLEEP)


def lightsleep(ms=0):
    time.sleep_ms(ms)


def idle():
    time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._value = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self._mode = mode
        if value is not None:
            self._value = 1 if value else 0

    def value(self, v=None):
        if v is None:
            if simhw is not None and hasattr(simhw, "pin_read"):
                r = simhw.pin_read(self.id)
                if r is not None:
                    return r
            return self._value
        self._value = 1 if v else 0
        if simhw is not None and hasattr(simhw, "pin_write"):
            simhw.pin_write(self.id, self._value)

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 0
    WIDTH_10BIT = 1
    WIDTH_11BIT = 2
    WIDTH_12BIT = 3
    # Full-scale input per attenuation, as the ESP32 calibrated driver reports it (µV).
    _FULL_UV = (950000, 1250000, 1750000, 3100000)

    def __init__(self, pin, atten=None):
        self.pin = pin.id if isinstance(pin, Pin) else int(pin)
        self._bits = 12
        self.atten(self.ATTN_11DB if atten is None else atten)

    def atten(self, atten):
        self._atten = atten
        if simhw is not None and hasattr(simhw, "adc_set_atten"):
            simhw.adc_set_atten(self.pin, atten)

    def width(self, width):
        self._bits = 9 + width

    def read_u16(self):
        if simhw is not None:
            return simhw.adc_read_u16(self.pin, self._atten)
        return 32768

    def read(self):
        return self.read_u16() >> (16 - self._bits)

    def read_uv(self):
        if simhw is not None and hasattr(simhw, "adc_read_uv"):
            return simhw.adc_read_uv(self.pin, self._atten)
        return self.read_u16() * self._FULL_UV[self._atten] // 65535


class I2C:
    """Delegates to the simulated bus (simhw.i2c_bus): register-level chip models answer;
    an address nobody answers raises OSError(ENODEV), as on a board."""

    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq
        self._bus = simhw.i2c_bus(id) if simhw is not None else _NoBus()

    def scan(self):
        return self._bus.scan()

    def writeto(self, addr, buf, stop=True):
        return self._bus.writeto(addr, buf, stop)

    def readfrom_into(self, addr, buf, stop=True):
        self._bus.readfrom_into(addr, buf, stop)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self._bus.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._bus.writeto_mem(addr, memaddr, buf, addrsize)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._bus.readfrom_mem_into(addr, memaddr, buf, addrsize)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self._bus.readfrom_mem_into(addr, memaddr, buf, addrsize)
        return bytes(buf)


class _NoBus:
    """A bus with nothing on it (no simulated hardware)."""

    def scan(self):
        return []

    def _none(self, *args):
        raise OSError(_ENODEV)

    writeto = readfrom_into = writeto_mem = readfrom_mem_into = _none


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, freq=400000, timeout=50000):
        I2C.__init__(self, 0, scl, sda, freq, timeout)


class WDT:
    """The supervisor enforces the timeout: not fed in time, the board resets (WDT_RESET).
    As on the ESP32 it cannot be stopped, and it keeps running across a soft reboot."""

    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("timeout must be >= 1 ms")
        self._msg = "wdt=%d" % timeout
        self.feed()

    def feed(self):
        _simenv.tell(self._msg)


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is not None:
            return None  # the host clock is already right; a board would set it here
        t = time.localtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)

    def init(self, dt=None):
        self.datetime(dt)

    def memory(self, data=None):
        return b""


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=0, **kw):
        pass

    def init(self, **kw):
        raise OSError("machine.Timer callbacks are not simulated; use asyncio")

    def deinit(self):
        pass
