# A virtual microsecond clock for ac_rms tests: the driver paces its burst against it and (for
# the virtual board's ADC) simhw takes the mains phase from it, so the tests do not depend on how
# busy the host is (a real ESP32 is never preempted for milliseconds; a test process can be).
from drivers import ac_rms


class VirtualClock:
    def __init__(self, step_us=2):
        self.t = 1000
        self.step = step_us

    def ticks_us(self):
        self.t += self.step
        return self.t

    def ns(self):
        return self.t * 1000


def run(fn, simhw=None, step_us=2):
    """Call fn() with ac_rms (and simhw, if given) on a virtual clock; restore afterwards."""
    clock = VirtualClock(step_us)
    saved = ac_rms.ticks_us
    ac_rms.ticks_us = clock.ticks_us
    if simhw is not None:
        simhw.set_clock(clock.ns)
    try:
        return fn()
    finally:
        ac_rms.ticks_us = saved
        if simhw is not None:
            simhw.set_clock(None)
