# A DC channel: the mean of a few ADC samples, in volts at the pin (read_uv uses the chip's
# eFuse calibration on the ESP32). The attenuation is set by the board layer when it makes the
# ADC object; atten_db here only says where the input clips.
from drivers import ADC_FULL_SCALE_UV, ADC_RAIL_LOW_UV


class DCChannel:
    QUANTITIES = ("voltage",)
    RANGES = ((0.0, 3.3),)

    def __init__(self, adc, samples=16, atten_db=11):
        if not 1 <= samples <= 4096:
            raise ValueError("adc: samples must be 1..4096")
        if atten_db not in ADC_FULL_SCALE_UV:
            raise ValueError("adc: atten_db must be one of 0, 2.5, 6, 11")
        self.adc = adc
        self.samples = samples
        self._rail_high = ADC_FULL_SCALE_UV[atten_db] - 5000

    def read(self):
        read = self.adc.read_uv
        total = 0
        lo = 1 << 30
        hi = -1
        try:
            for _ in range(self.samples):
                v = read()
                total += v
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
        except OSError:
            return None, "error"
        if hi >= self._rail_high or lo <= ADC_RAIL_LOW_UV and hi <= ADC_RAIL_LOW_UV:
            return None, "out_of_physical_range"
        return (total / self.samples / 1e6,), "ok"
