# The DC adc channel, DS18x20 and DHT22 (through fakes of MicroPython's modules), and system.
from drivers.adc import DCChannel
from drivers.dht22 import DHT22Sensor
from drivers import onewire_temp
from drivers.onewire_temp import DS18X20Sensor
from drivers.system import System


class ConstADC:
    def __init__(self, uv):
        self.uv = uv
        self.reads = 0

    def read_uv(self):
        self.reads += 1
        return self.uv


def test_adc_channel_mean_and_rails():
    adc = ConstADC(1234000)
    assert DCChannel(adc, samples=8).read() == ((1.234,), "ok")
    assert adc.reads == 8
    assert DCChannel(ConstADC(3100000)).read() == (None, "out_of_physical_range")
    assert DCChannel(ConstADC(0)).read() == (None, "out_of_physical_range")


class FakeDS:
    """The interface of micropython-lib's ds18x20.DS18X20."""

    def __init__(self, roms, temp=21.5, fail=None):
        self.roms = roms
        self.temp = temp
        self.fail = fail
        self.conversions = 0

    def scan(self):
        if self.fail == "bus":
            raise OSError(5)
        return self.roms

    def convert_temp(self):
        self.conversions += 1

    def read_temp(self, rom):
        if self.fail == "crc":
            raise Exception("CRC error")
        return self.temp


def test_a_dc_channel_leaves_the_ac_driver_unloaded():
    # a board with no AC input does not pay for ac_rms (nor compile its viper kernel)
    import sys
    saved = dict((n, sys.modules.pop(n)) for n in ("drivers.adc", "drivers.ac_rms", "drivers._rms_fast")
                 if n in sys.modules)
    try:
        __import__("drivers.adc")
        assert "drivers.ac_rms" not in sys.modules and "drivers._rms_fast" not in sys.modules
    finally:
        sys.modules.update(saved)


def waits_of(fn):
    """fn() with the driver's sleep_ms recorded instead of slept: (fn's result, the waits in ms)."""
    waits = []
    real = onewire_temp.sleep_ms
    onewire_temp.sleep_ms = waits.append
    try:
        return fn(), waits
    finally:
        onewire_temp.sleep_ms = real


def test_ds18x20_pipelines_conversions():
    ds = FakeDS([b"\x28" + bytes(7)])
    s = DS18X20Sensor(ds)
    assert waits_of(s.read) == (((21.5,), "ok"), [750])
    assert ds.conversions == 2     # the first read waits; it starts the next conversion too
    assert waits_of(s.read) == (((21.5,), "ok"), [])
    assert ds.conversions == 3     # later reads never wait


def test_ds18x20_failures():
    assert waits_of(DS18X20Sensor(FakeDS([])).read) == ((None, "disconnected"), [])
    assert waits_of(DS18X20Sensor(FakeDS([b"x"], fail="crc")).read) == ((None, "crc"), [750])
    assert waits_of(DS18X20Sensor(FakeDS([b"x"], fail="bus")).read) == ((None, "disconnected"), [])


class FakeDHT:
    def __init__(self, error=None):
        self.error = error

    def measure(self):
        if self.error is not None:
            raise self.error

    def temperature(self):
        return 24.3

    def humidity(self):
        return 55.1


def test_dht22():
    assert DHT22Sensor(FakeDHT()).read() == ((24.3, 55.1), "ok")
    assert DHT22Sensor(FakeDHT(OSError(110))).read() == (None, "timeout")
    assert DHT22Sensor(FakeDHT(Exception("checksum error"))).read() == (None, "crc")


def test_system_metrics():
    def broken():
        raise OSError(1)
    s = System(mcu_temperature=lambda: 47, freq=lambda: 160000000, rssi=broken,
               reset_cause=lambda: 5, boot_count=3, free_heap=lambda: 61234)
    s.set_loop_utilisation(250, 10000)
    values, status = s.read()
    assert status == "ok"
    named = dict(zip(System.QUANTITIES, values))
    assert named["mcu_temperature"] == 47 and named["cpu_freq"] == 160000000
    assert named["wifi_rssi"] is None            # a failing source gives None, not an exception
    assert named["reset_cause"] == 5 and named["boot_count"] == 3
    assert named["loop_utilisation"] == 2.5
    assert named["uptime"] >= 0
    assert named["free_heap"] == 61234


def test_system_free_heap_is_the_gc_heaps_own():
    import gc
    import sys
    free = dict(zip(System.QUANTITIES, System().read()[0]))["free_heap"]
    if sys.implementation.name == "cpython":
        assert free is None                      # CPython has no GC heap of its own to report
    else:
        gc.collect()
        assert type(free) is int and 0 < free <= gc.mem_free() + gc.mem_alloc()
