# Sensor drivers: hardware is passed in, nothing here imports machine.
#
# Every driver class has QUANTITIES (names of what one read yields), RANGES (physical limits per
# quantity, inclusive) and read() -> (values, status): values is a tuple in QUANTITIES order (an
# entry may be None) or None when the read failed; status is one of edge/status.py's strings.
# read() never raises into the sampling loop.
#
# The driver registry is drivers/registry.py.

def oserror_status(e):
    """Map an OSError from a bus to a read status."""
    code = e.args[0] if e.args else 0
    if code == 19 or code == 5:     # ENODEV (no ACK on I2C), EIO
        return "disconnected"
    if code == 110 or code == 116:  # ETIMEDOUT (on the ESP32: clock stretching ran out)
        return "timeout"
    return "error"
