from compat import Elapsed, EPOCH_OFFSET, unix_time

_PERIOD = 1 << 30  # an ESP32's ticks_ms wraps here; ticks_diff is valid within +-2^29 ms


class _Ticks30:
    """ticks_ms/ticks_diff of a 30-bit tick counter, advanced by hand."""

    def __init__(self, start):
        self.t = start

    def ticks(self):
        return self.t % _PERIOD

    def diff(self, a, b):
        return ((a - b + (_PERIOD >> 1)) & (_PERIOD - 1)) - (_PERIOD >> 1)


def test_uptime_stays_right_across_a_7_day_tick_span():
    clock = _Ticks30(_PERIOD - 5000)  # 5 s before the counter wraps
    up = Elapsed(clock.ticks, clock.diff)
    step = 10 * 1000                  # the sampler reads it every 10 s
    for _ in range(7 * 24 * 360):     # 7 days: more than the 6.2-day ticks_diff span and a wrap
        clock.t += step
        up.ms()
    assert up.ms() == 7 * 24 * 3600 * 1000
    # what a plain ticks_diff from boot would say by then: wrong (wrapped negative)
    assert clock.diff(clock.ticks(), _PERIOD - 5000) != 7 * 24 * 3600 * 1000


def test_system_uptime_uses_the_wrap_safe_clock():
    import compat
    from drivers.system import System
    saved = compat.uptime
    clock = _Ticks30(0)
    try:
        import drivers.system as ds
        ds.uptime = Elapsed(clock.ticks, clock.diff)
        s = System()
        for _ in range(7 * 24):
            clock.t += 3600 * 1000
            ds.uptime.ms()
        values, status = s.read()
        assert status == "ok" and values[System.QUANTITIES.index("uptime")] == 7 * 24 * 3600
    finally:
        ds.uptime = saved


def test_unix_time_counts_from_1970_on_every_port():
    import time
    t = unix_time()
    assert type(t) is int
    assert t > 1700000000                         # after 2023: not 30 years early on a 2000-epoch port
    assert EPOCH_OFFSET == (946684800 if time.gmtime(0)[0] == 2000 else 0)
