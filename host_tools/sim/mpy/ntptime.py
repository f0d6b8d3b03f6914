# Stand-in for `ntptime` on the virtual board. The unix port's clock is already the host's, so
# settime() only keeps the call's shape; the sim flag `ntp_fail` makes it fail as a board offline does.
import time as _time

import _simenv

host = "pool.ntp.org"
timeout = 1


def time_():
    if _simenv.flag("ntp_fail"):
        raise OSError(110)  # ETIMEDOUT, what the socket gives a board that gets no answer
    return int(_time.time())


def settime():
    time_()


time = time_
