# ac_rms: within 0.5 % of the true RMS on clean and noisy sines, the machine-code kernel equal to
# the plain one, clipping as out_of_physical_range, and the transformer ratio recovered on the
# virtual board's ADC.
import math
from array import array

from _simhw_path import world
from _vclock import run
from drivers import ac_rms
from drivers.ac_rms import ACRMS


class SineADC:
    """read_uv() walks a sampled sine: bias + amplitude * sin, plus seeded noise (sigma uV)."""

    def __init__(self, rms_v, samples_per_cycle, bias_v=1.55, noise_uv=0, phase=0.3, seed=12345):
        self.amp = rms_v * math.sqrt(2.0) * 1e6
        self.bias = bias_v * 1e6
        self.step = 2.0 * math.pi / samples_per_cycle
        self.noise = noise_uv
        self.i = 0
        self.phase = phase
        self.seed = seed

    def _rand(self):
        x = self.seed
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.seed = x
        return x / 4294967296.0

    def read_uv(self):
        v = self.bias + self.amp * math.sin(self.phase + self.i * self.step)
        if self.noise:
            v += (self._rand() + self._rand() + self._rand() - 1.5) * 2.0 * self.noise
        self.i += 1
        return int(v)


def _read(adc, **kw):
    values, status = run(ACRMS(adc, **kw).read)
    assert status == "ok", status
    return values[0]


def test_clean_sine_within_half_a_percent():
    for rms in (0.8, 0.3, 0.05):
        got = _read(SineADC(rms, 40), samples_per_cycle=40, cycles=5)
        assert abs(got / rms - 1.0) < 0.005, (rms, got)


def test_noisy_sine_within_half_a_percent():
    # 20 mV of noise on a 0.6 V RMS signal (3 % of the amplitude), 60 Hz wiring, 32 samples/cycle
    got = _read(SineADC(0.6, 32, noise_uv=20000), mains_hz=60, samples_per_cycle=32, cycles=6)
    assert abs(got / 0.6 - 1.0) < 0.005, got


def test_dc_bias_is_removed():
    a = _read(SineADC(0.5, 40, bias_v=1.2), samples_per_cycle=40, cycles=2)
    b = _read(SineADC(0.5, 40, bias_v=1.9), samples_per_cycle=40, cycles=2)
    assert abs(a - b) < 0.0005 and abs(a / 0.5 - 1.0) < 0.005


def test_fast_kernel_equals_plain():
    buf = array("i", [int(15500 + 11000 * math.sin(i * 0.157) + (i * 7919) % 97) for i in range(1000)])
    out = array("i", (0, 0, 0))
    plain = ac_rms.rms_of(buf, 1000, out, ac_rms.sums_plain)
    assert abs(plain - ac_rms.rms_of(buf, 1000, out) / 1.0) < 1e-6 * plain
    kernels = []
    try:
        from drivers import _rms_fast
        kernels = [_rms_fast.sums]
    except (ImportError, SyntaxError):
        pass    # CPython: the plain kernel is the one in use
    for k in kernels:
        assert abs(ac_rms.rms_of(buf, 1000, out, k) - plain) < 1e-6 * plain


def test_clipping_is_out_of_physical_range():
    # 1.3 V RMS on a 1.55 V bias swings below 0 V: the ADC clips, the RMS would be wrong.
    assert run(ACRMS(SineADC(1.3, 40), cycles=1).read) == (None, "out_of_physical_range")


def test_bad_parameters_are_refused():
    for kw in ({"samples_per_cycle": 2}, {"cycles": 0}, {"atten_db": 3}, {"mains_hz": 0}):
        try:
            ACRMS(SineADC(0.1, 40), **kw)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (kw,))


def test_ratio_recovered_on_the_virtual_adc():
    # The virtual board's pin 34: 24 kV through a 30000:1 transformer, ESP32-like transfer; the
    # mains phase follows the clock the driver paces against.
    hw = world({"voltage": 24000.0})

    class Pin34:
        def read_uv(self):
            return hw.adc_read_uv(34)
    values, status = run(ACRMS(Pin34(), samples_per_cycle=40, cycles=5).read, hw)
    assert status == "ok", status
    assert abs(values[0] * 30000.0 / 24000.0 - 1.0) < 0.005, values


def test_late_samples_give_timeout_not_a_wrong_value():
    class SlowADC(SineADC):
        def read_uv(self):
            if self.i % 20 == 10:    # every 20th sample stalls for 3 slots
                clock.t += 1500
            return SineADC.read_uv(self)

    from _vclock import VirtualClock
    clock = VirtualClock()
    saved = ac_rms.ticks_us
    ac_rms.ticks_us = clock.ticks_us
    try:
        d = ACRMS(SlowADC(0.5, 40), samples_per_cycle=40, cycles=1)
        assert d.read() == (None, "timeout")
        assert d.last_late_us > d.period_us
    finally:
        ac_rms.ticks_us = saved


def test_an_adc_with_its_own_sample_clock_is_read_without_spinning():
    """paced=False (a board whose ADC keeps its own sample clock, as the virtual board's does):
    the burst is read back to back; paced, the driver polls the clock until each sample's slot.
    A fake clock that moves 1 us per look counts the polls (no wall clock involved)."""
    import drivers.ac_rms as mod

    class ADC:
        reads = 0

        def read_uv(self):
            ADC.reads += 1
            return 1650000

    clock = [0]

    def fake_ticks_us():
        clock[0] += 1
        return clock[0]

    real = mod.ticks_us
    mod.ticks_us = fake_ticks_us
    try:
        looks = []
        for paced in (False, True):
            clock[0] = 0
            d = mod.ACRMS(ADC(), mains_hz=50, samples_per_cycle=40, cycles=1, paced=paced)
            d._acquire()
            looks.append(clock[0])
    finally:
        mod.ticks_us = real
    assert ADC.reads == 80
    assert looks[0] == 1 + 40               # the start, then one look per read (its lateness)
    assert looks[1] >= 40 * 500             # paced: about one look per microsecond of each 500 us slot
