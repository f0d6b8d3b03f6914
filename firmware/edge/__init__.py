# The edge pipeline: config, calibration, detection rules, alerts, diagnosis, shadow documents.
# Runs unchanged on an ESP32 (MicroPython 1.2x), the MicroPython unix port and CPython.
VERSION = "0.1.0"

# A scaled value within one float32 step (relative 2^-23) of a half-way point is one on every
# runtime: 0.285 is 0.28499999... in float64 and 0.28500001 in float32. Capped, so that where
# float32 has no digits left to decide with, plain half-up rounding applies.
_HALF_TOL = 1.2e-7


def scaled(x, scale):
    """x * scale rounded to an int, half-way points up, with the same answer in float32 (ESP32)
    and float64: near-halves within _HALF_TOL count as halves."""
    y = x * scale
    f = y // 1
    tol = (y if y > 0 else -y) * _HALF_TOL
    if y - f >= 0.5 - (tol if tol < 0.1 else 0.0):
        f += 1
    return int(f)


def round_half_up(x, scale):
    """x rounded to a multiple of 1/scale (scale = 10**decimals); see scaled()."""
    return scaled(x, scale) / scale
