# The board layer: drivers built from board wiring + config, shared devices read once per cycle,
# per-metric statuses, bad wiring reported without stopping the others.
from _simhw_path import world
from _vclock import run
from board import Board
from board_build import resolve


class FakeMachine:
    """machine, as the board layer uses it, over simhw (what the virtual board's stand-in does)."""

    def __init__(self, hw):
        hw_ = hw

        class Pin:
            def __init__(self, n, *a, **k):
                self.id = n

        class ADC:
            ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

            def __init__(self, pin):
                self.pin = pin.id

            def atten(self, a):
                hw_.adc_set_atten(self.pin, a)

            def read_uv(self):
                return hw_.adc_read_uv(self.pin)

        self.Pin = Pin
        self.ADC = ADC
        self.buses = []

        def I2C(bus_id, scl=None, sda=None, freq=0):
            bus = CountingBus(hw_.i2c_bus(bus_id))
            self.buses.append(bus)
            return bus
        self.I2C = I2C


class CountingBus:
    def __init__(self, bus):
        self.bus = bus
        self.writes = 0

    def writeto(self, addr, buf, stop=True):
        self.writes += 1
        return self.bus.writeto(addr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        return self.bus.readfrom_into(addr, buf)


BOARD = {"name": "sim", "chip": "esp32", "mains_hz": 50, "adc_atten_db": 11,
         "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 100000},
         "sensors": {
             "voltage": {"driver": "ac_rms", "pin": 34, "samples_per_cycle": 20, "cycles": 2},
             "current": {"driver": "ac_rms", "pin": 35, "samples_per_cycle": 20, "cycles": 2},
             "temperature": {"driver": "sht3x", "quantity": "temperature", "address": 68},
             "humidity": {"driver": "sht3x", "quantity": "humidity", "address": 68}}}

# The issue-2 config: no sensor keys at all.
CFG = {"thing": "grid-sensor-001", "metrics": {
    "voltage": {"unit": "V", "calibration": []}, "current": {"unit": "A", "calibration": []},
    "temperature": {"unit": "C", "calibration": []}, "humidity": {"unit": "%", "calibration": []}}}


def _hw():
    return world({"voltage": 24000.0, "current": 450.0, "temperature": 36.0, "humidity": 58.0},
                 adc={"34": {"signal": "voltage", "ratio": 30000.0, "bias_v": 1.55, "noise_v": 0.0},
                      "35": {"signal": "current", "ratio": 1000.0, "bias_v": 1.55, "noise_v": 0.0}},
                 i2c=[{"bus": 0, "chip": "sht3x", "address": 68}])


def test_config_without_sensor_keys_reads_every_metric_from_board_wiring():
    hw = _hw()
    m = FakeMachine(hw)
    b = Board(BOARD, CFG, machine=m)
    assert b.problems == []
    raw, status = run(b.read_all, hw)    # on a virtual clock: see tests/firmware/_vclock.py
    assert status == {"voltage": "ok", "current": "ok", "temperature": "ok", "humidity": "ok"}
    assert abs(raw["voltage"] * 30000 / 24000 - 1) < 0.005
    assert abs(raw["current"] * 1000 / 450 - 1) < 0.005
    assert abs(raw["temperature"] - 36.0) < 0.01 and abs(raw["humidity"] - 58.0) < 0.01
    # temperature and humidity share one SHT3x: one measurement command per cycle
    assert len(m.buses) == 1 and m.buses[0].writes == 1


def test_config_sensor_overrides_board_wiring():
    cfg = {"metrics": {"line_v": {"sensor": {"driver": "ac_rms", "pin": 34, "samples_per_cycle": 16,
                                             "cycles": 1}}}}
    name, index, params = resolve("line_v", cfg["metrics"]["line_v"]["sensor"], BOARD)
    assert (name, index) == ("ac_rms", 0)
    assert params == {"pin": 34, "samples_per_cycle": 16, "cycles": 1, "mains_hz": 50, "atten_db": 11,
                      "max_late_us": 0, "paced": True}
    hw = _hw()
    raw, status = run(Board(BOARD, cfg, machine=FakeMachine(hw)).read_all, hw)
    assert status == {"line_v": "ok"}


def test_failures_are_none_plus_status_per_metric():
    hw = world({"temperature": 36.0}, faults=[{"kind": "disconnected", "address": 68, "from_s": 0}],
               i2c=[{"bus": 0, "chip": "sht3x", "address": 68}])
    raw, status = run(Board(BOARD, CFG, machine=FakeMachine(hw)).read_all, hw)
    assert raw["temperature"] is None and status["temperature"] == "disconnected"
    assert raw["humidity"] is None and status["humidity"] == "disconnected"
    assert status["voltage"] == "ok"


def test_out_of_physical_range_and_clipping():
    # 300 degC (the reference anomaly) saturates the SHT3x at 130 degC: outside its -40..125 range.
    # 100 kV through the 30000:1 transformer clips the ADC.
    hw = world({"temperature": 300.0, "voltage": 100000.0},
               adc={"34": {"signal": "voltage", "ratio": 30000.0, "bias_v": 1.55, "noise_v": 0.0}},
               i2c=[{"bus": 0, "chip": "sht3x", "address": 68}])
    raw, status = run(Board(BOARD, CFG, machine=FakeMachine(hw)).read_all, hw)
    assert (raw["temperature"], status["temperature"]) == (None, "out_of_physical_range")
    assert (raw["voltage"], status["voltage"]) == (None, "out_of_physical_range")
    assert status["humidity"] == "ok"


def test_bad_wiring_is_reported_and_the_rest_still_reads():
    cfg = {"metrics": {"temperature": {}, "pressure": {},
                       "voltage": {"sensor": {"driver": "nope", "pin": 34}},
                       "humidity": {"sensor": {"driver": "sht3x", "quantity": "pressure"}}}}
    b = Board(BOARD, cfg, machine=FakeMachine(_hw()))
    assert len(b.problems) == 3, b.problems
    assert b.problems[0].startswith("metrics.humidity.sensor: driver sht3x has no quantity")
    raw, status = run(b.read_all)
    assert status == {"temperature": "ok", "pressure": "error", "voltage": "error", "humidity": "error"}


def test_system_metrics_and_loop_utilisation():
    cfg = {"metrics": {"cpu_usage": {"sensor": {"driver": "system", "quantity": "loop_utilisation"}},
                       "uptime": {"sensor": {"driver": "system"}}}}
    b = Board(BOARD, cfg, machine=FakeMachine(_hw()), boot_count=4)
    raw, status = b.read_all()
    assert status["cpu_usage"] == "no_data" and status["uptime"] == "ok"
    b.set_loop_utilisation(1200, 10000)
    raw, status = b.read_all()
    assert raw["cpu_usage"] == 12.0 and status["cpu_usage"] == "ok"
