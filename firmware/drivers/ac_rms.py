# AC RMS of a mains signal on an ADC pin: the grid sensor's voltage (through a potential
# transformer) and current (through a CT clamp and burden resistor).
#
# One read() samples a burst of whole mains cycles at samples_per_cycle * mains_hz, paced against
# absolute deadlines so jitter does not accumulate, removes the DC bias (the signal rides on a
# mid-rail bias) and returns the RMS of what is left, in volts at the ADC pin. Calibration stages
# (not this driver) turn it into line volts or amps. A burst that touches either rail of the ADC
# is clipped: its RMS would be wrong, so the read is out_of_physical_range.
import math
from array import array

from compat import const, ticks_us, ticks_add, ticks_diff
from drivers import ADC_FULL_SCALE_UV, ADC_RAIL_LOW_UV

try:
    from drivers._rms_fast import sums as _sums
except (ImportError, SyntaxError, ValueError):    # CPython, or a port built without viper
    _sums = None

_UNIT_UV = const(100)         # samples are stored in units of 100 uV (fits the viper kernel)
_CHUNK = const(536870912)     # 2**29: the kernel's carry unit
_MAX_SAMPLES = const(20000)   # keeps the kernel's plain sum inside 32 bits


def sums_plain(buf, n, out):
    """The kernel in plain Python (same contract as drivers._rms_fast.sums)."""
    s = 0
    for i in range(n):
        s += buf[i]
    m = s // n
    sq = 0
    for i in range(n):
        d = buf[i] - m
        sq += d * d
    out[0] = s
    out[1] = sq % _CHUNK
    out[2] = sq // _CHUNK


def rms_of(buf, n, out, kernel=None):
    """RMS (in buffer units) of buf[:n] around its mean."""
    (kernel or _sums or sums_plain)(buf, n, out)
    s = out[0]
    m0 = s // n
    frac = s / n - m0
    var = (out[2] * float(_CHUNK) + out[1]) / n - frac * frac
    return math.sqrt(var) if var > 0.0 else 0.0


class ACRMS:
    QUANTITIES = ("rms",)
    RANGES = ((0.0, 3.3),)

    def __init__(self, adc, mains_hz=50, samples_per_cycle=40, cycles=5, atten_db=11, max_late_us=0,
                 paced=True):
        n = int(samples_per_cycle) * int(cycles)
        if not (mains_hz > 0 and samples_per_cycle >= 4 and cycles >= 1 and n <= _MAX_SAMPLES):
            raise ValueError("ac_rms: need mains_hz > 0, samples_per_cycle >= 4, cycles >= 1, "
                             "samples_per_cycle * cycles <= %d" % _MAX_SAMPLES)
        if atten_db not in ADC_FULL_SCALE_UV:
            raise ValueError("ac_rms: atten_db must be one of 0, 2.5, 6, 11")
        self.adc = adc
        self.n = n
        self.period_us = int(1000000 / (mains_hz * samples_per_cycle) + 0.5)
        # a sample started later than this is on the wrong phase: one sample period unless the
        # ADC is timed by hardware (a board definition says so with a larger max_late_us)
        self.max_late_us = max_late_us or self.period_us
        # paced=False: the ADC keeps its own sample clock (a board definition says so), so reads
        # are taken back to back instead of spinning until each sample's slot
        self.paced = paced
        self._rail_high = ADC_FULL_SCALE_UV[atten_db] - 5000
        self._buf = array("i", bytes(4 * n))
        self._out = array("i", (0, 0, 0))
        self.last_late_us = 0     # the worst sample lateness in the burst kept

    def _acquire(self):
        """Sample one burst; returns (lowest, highest, latest start of a sample past its slot)."""
        read = self.adc.read_uv
        buf = self._buf
        period = self.period_us
        lo = 1 << 30
        hi = -1
        late = 0
        paced = self.paced
        t = ticks_us()
        for i in range(self.n):
            v = read()
            d = ticks_diff(ticks_us(), t)    # measured after the read: the sample is in there
            if d > late:
                late = d
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            buf[i] = v // _UNIT_UV
            t = ticks_add(t, period)
            while paced and ticks_diff(t, ticks_us()) > 0:
                pass
        return lo, hi, late

    def read(self):
        try:
            # A sample taken a slot or more after its time (a GC pause, a long interrupt, a busy
            # host under the virtual board) lands on the wrong phase of the sine: take the burst
            # again, once (a retry costs a whole burst of loop time). Late again: no value rather
            # than a wrong one.
            for _ in range(2):
                lo, hi, late = self._acquire()
                if late <= self.max_late_us:
                    break
            self.last_late_us = late
        except OSError:
            return None, "error"
        if late > self.max_late_us:
            return None, "timeout"
        if lo <= ADC_RAIL_LOW_UV or hi >= self._rail_high:
            return None, "out_of_physical_range"
        return (rms_of(self._buf, self.n, self._out) * (_UNIT_UV / 1e6),), "ok"
