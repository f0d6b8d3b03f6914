# DHT22 (AM2302) through MicroPython's built-in dht module; the board layer passes
# dht.DHT22(Pin(n)). The sensor needs 2 s between measurements: read it no faster.


class DHT22Sensor:
    QUANTITIES = ("temperature", "humidity")
    RANGES = ((-40.0, 80.0), (0.0, 100.0))

    def __init__(self, dht):
        self.dht = dht

    def read(self):
        try:
            self.dht.measure()
        except OSError as e:    # dht_readinto: ETIMEDOUT when the sensor does not answer
            code = e.args[0] if e.args else 0
            return None, "timeout" if code in (110, 116) else "disconnected"
        except Exception:       # dht.py raises Exception("checksum error")
            return None, "crc"
        return (self.dht.temperature(), self.dht.humidity()), "ok"
