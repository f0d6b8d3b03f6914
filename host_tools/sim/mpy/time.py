# Stand-in for the ESP32's `time` on the virtual board. The unix port counts from 1970 and returns a
# float from time(); the ESP32 port counts from 2000-01-01 and returns an int. Everything else
# (ticks, sleep) is the unix port's own, found by hiding this file while importing the built-in.
import sys

_path = sys.path[:]
sys.path.clear()
try:
    from time import *  # the built-in module
    from time import gmtime as _gmtime, localtime as _localtime, mktime as _mktime, time_ns as _time_ns
finally:
    sys.path.extend(_path)
    del _path

_EPOCH_2000 = 946684800  # seconds from 1970-01-01 to 2000-01-01


def time_ns():
    return _time_ns() - _EPOCH_2000 * 1000000000


def time():
    return _time_ns() // 1000000000 - _EPOCH_2000


def gmtime(secs=None):
    return _gmtime((time() if secs is None else secs) + _EPOCH_2000)


def localtime(secs=None):
    return gmtime(secs)  # the ESP32 keeps UTC


def mktime(t):
    return _mktime(t) - _EPOCH_2000
