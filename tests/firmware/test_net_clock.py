# net.clock: the clock set by NTP before the first handshake, and its failure put into words.
import sys

from _helpers import raises
from net.clock import ClockError, set_clock


class _NTP:
    host = "pool.ntp.org"

    def __init__(self, fail=None):
        self.fail = fail
        self.calls = 0

    def settime(self):
        self.calls += 1
        if self.fail is not None:
            raise self.fail


def test_no_ntptime_means_the_os_keeps_the_time():
    assert set_clock("time.example", ntp=None) is False


def test_the_configured_server_is_asked():
    ntp = _NTP()
    assert set_clock("time.example", ntp=ntp) is True
    assert ntp.host == "time.example" and ntp.calls == 1
    assert set_clock(None, ntp=ntp) is True and ntp.host == "time.example"  # None: ntp's own


def test_a_failed_ntp_names_the_server_and_why_it_matters():
    e = raises(ClockError, set_clock, "time.example", ntp=_NTP(OSError(110)))
    why = "OSError(110)" if sys.implementation.name == "cpython" else "OSError(110,)"  # MicroPython's repr
    assert str(e) == ("NTP from time.example failed (%s): the clock is not set, so certificates "
                      "cannot be checked" % why)


def test_tls_explain_passes_the_clock_sentence_on():
    from net import tls
    e = ClockError("NTP from x failed")
    assert tls.explain(e, "broker.example") == "NTP from x failed"
