# net.backoff: exponential growth, full jitter, cap, floor, reset after a healthy link.
from _helpers import raises
from net.backoff import Backoff


def test_ceiling_doubles_to_the_cap():
    b = Backoff(base=1, cap=120, rand=lambda: 1.0)
    assert [b.delay() for _ in range(10)] == [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_full_jitter_stays_within_floor_and_ceiling():
    vals = iter([0.0, 0.5, 0.25, 0.99])
    b = Backoff(base=1, cap=120, rand=lambda: next(vals))
    assert b.delay() == 1        # never below the 1 s minimum
    assert b.delay() == 1.0      # 0.5 * 2
    assert b.delay() == 1.0      # 0.25 * 4
    assert abs(b.delay() - 7.92) < 1e-9


def test_real_jitter_spreads_delays():
    b = Backoff()
    b.attempts = 7
    ds = []
    for _ in range(50):
        b.attempts = 7
        ds.append(b.delay())
    assert min(ds) >= 1 and max(ds) <= 120
    assert max(ds) - min(ds) > 10


def test_reset_only_after_30_s_connected():
    b = Backoff(rand=lambda: 1.0)
    for _ in range(5):
        b.delay()
    b.connected(100.0)
    b.disconnected(110.0)        # up 10 s: still backing off
    assert b.delay() == 32
    b.connected(200.0)
    b.disconnected(231.0)        # up 31 s: start again
    assert b.delay() == 1


def test_bad_parameters_are_refused():
    assert "base" in str(raises(ValueError, Backoff, base=0))
    assert "cap" in str(raises(ValueError, Backoff, base=10, cap=5))
