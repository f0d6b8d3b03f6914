# DS18B20/DS18S20 on a 1-Wire bus through MicroPython's built-in ds18x20 module. (Named
# onewire_temp so it never shadows that module.) The board layer passes the
# ds18x20.DS18X20(onewire.OneWire(pin)) object.
#
# A conversion takes up to 750 ms: read() returns the conversion started by the previous read()
# and starts the next, so the sampling loop never waits for it except on the very first read.
from compat import sleep_ms


class DS18X20Sensor:
    QUANTITIES = ("temperature",)
    RANGES = ((-55.0, 125.0),)

    def __init__(self, ds, index=0):
        self.ds = ds
        self.index = index
        self._rom = None
        self._pending = False

    def _convert(self):
        self.ds.convert_temp()
        self._pending = True

    def read(self):
        try:
            if self._rom is None:
                roms = self.ds.scan()
                if len(roms) <= self.index:
                    return None, "disconnected"
                self._rom = roms[self.index]
            if not self._pending:
                self._convert()
                sleep_ms(750)
            self._pending = False
            t = self.ds.read_temp(self._rom)
            self._convert()
        except OSError:
            self._rom = None
            self._pending = False
            return None, "disconnected"
        except Exception:    # the module raises a bare Exception("CRC error")
            self._pending = False
            return None, "crc"
        if t is None:
            return None, "error"
        return (t,), "ok"
