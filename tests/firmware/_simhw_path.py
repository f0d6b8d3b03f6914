# Firmware tests that drive the drivers against the virtual board's chip models import simhw
# from host_tools/sim/mpy (the drivers themselves never do).
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_path = _here + "/../../host_tools/sim/mpy"
if _path not in sys.path:
    sys.path.append(_path)

import simhw  # noqa: E402
import simhw_chips  # noqa: E402


def world(signals=None, faults=(), adc=None, noise=None, mains_hz=50, i2c=None):
    """Initialise simhw with constant signals and return it."""
    sig = {"voltage": 24000.0, "current": 300.0, "temperature": 23.5, "humidity": 41.0,
           "pressure": 100000.0}
    if signals:
        sig.update(signals)
    scn = {"name": "test", "seed": 7, "time_scale": 1.0, "loop": True,
           "timeline": {"interval_s": 10, "signals": {k: [v] for k, v in sig.items()}},
           "hardware": {"mains_hz": mains_hz,
                        "adc": adc if adc is not None else
                        {"34": {"signal": "voltage", "ratio": 30000.0, "bias_v": 1.55, "noise_v": 0.0}},
                        "i2c": i2c if i2c is not None else
                        [{"bus": 0, "chip": "sht3x", "address": 0x44},
                         {"bus": 0, "chip": "sht4x", "address": 0x46},
                         {"bus": 0, "chip": "bme280", "address": 0x76}]},
           "noise": noise or {}, "faults": list(faults), "wifi_outages": [[5, 10]]}
    simhw.init(scenario=scn)
    return simhw
