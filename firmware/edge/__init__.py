# The edge pipeline: config, calibration, detection rules, alerts, diagnosis, shadow documents.
# Runs unchanged on an ESP32 (MicroPython 1.2x), the MicroPython unix port and CPython.
VERSION = "0.1.0"

# A scaled value this close to a half-way point (relative) is one on every runtime: float32 keeps
# about 7 significant digits, so 0.285 is 0.28499999... in float64 and 0.28500001 in float32.
_HALF_TOL = 1e-6


def round_half_up(x, scale):
    """x rounded to a multiple of 1/scale (scale = 10**decimals), half-way points up, with the
    same answer in float32 (ESP32) and float64: near-halves within _HALF_TOL count as halves."""
    y = x * scale
    f = y // 1
    if y - f >= 0.5 - (y if y > 0 else -y) * _HALF_TOL:
        f += 1
    return int(f) / scale
