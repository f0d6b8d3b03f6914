# Sensor drivers: hardware is passed in, nothing here imports machine.
#
# Every driver class has QUANTITIES (names of what one read yields), RANGES (physical limits per
# quantity, inclusive) and read() -> (values, status): values is a tuple in QUANTITIES order (an
# entry may be None) or None when the read failed; status is one of edge/status.py's strings.
# read() never raises into the sampling loop.
#
# The driver registry is drivers/registry.py.

# The ESP32 ADC's full-scale input (uV) per attenuation (dB), for both ADC drivers (adc, ac_rms):
# a sample at or above it, or within 20 mV of 0 V, is clipped.
ADC_FULL_SCALE_UV = {0: 950000, 2.5: 1250000, 6: 1750000, 11: 3100000}
ADC_RAIL_LOW_UV = 20000

def oserror_status(e):
    """Map an OSError from a bus to a read status."""
    code = e.args[0] if e.args else 0
    if code == 19 or code == 5:     # ENODEV (no ACK on I2C), EIO
        return "disconnected"
    if code == 110 or code == 116:  # ETIMEDOUT (on the ESP32: clock stretching ran out)
        return "timeout"
    return "error"
