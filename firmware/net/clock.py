# The board's clock, set by NTP before the first TLS handshake of a boot: certificate dates
# (net.tls.check_dates, and the broker's certificate in the handshake) need the time. Imported
# only while connecting, then unloaded. The unix port and CPython keep the host's time.
try:
    import ntptime  # ESP32 (and the virtual board's stand-in)
except ImportError:
    ntptime = None


class ClockError(Exception):
    pass


def set_clock(host=None, ntp=ntptime):
    """Set the clock by NTP from `host` (ntp's default when None). False where the OS keeps the
    time (no ntptime); ClockError naming the server when NTP fails."""
    if ntp is None:
        return False
    if host:
        ntp.host = host
    try:
        ntp.settime()
    except (OSError, OverflowError) as e:
        raise ClockError("NTP from %s failed (%r): the clock is not set, so certificates cannot be checked"
                         % (host or ntp.host, e))
    return True
