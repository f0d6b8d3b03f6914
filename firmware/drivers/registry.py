# The driver registry, read by the board layer while it builds the sensors (then unloaded: it is
# not needed in RAM afterwards) and by the host's board checks.
#
# DRIVERS is data (the host's board_check reads it too): name -> spec with
#   "module", "cls": where the class lives (imported on first use, so a board only loads what it uses)
#   "bus": what the board layer passes as the first argument: "i2c", "adc", "pin", "onewire", "system"
#   "quantities": the class's QUANTITIES
#   "params": keyword arguments the sensor dict may carry besides driver/pin/bus/address/quantity,
#             name -> (type name, default)
#   "addresses": the I2C addresses the chip can answer on (i2c drivers only)

DRIVERS = {
    "ac_rms": {"module": "drivers.ac_rms", "cls": "ACRMS", "bus": "adc",
               "quantities": ("rms",),
               "params": {"mains_hz": ("number", 50), "samples_per_cycle": ("int", 40),
                          "cycles": ("int", 5), "atten_db": ("number", 11),
                          "max_late_us": ("int", 0), "paced": ("bool", True)}},
    "adc": {"module": "drivers.adc", "cls": "DCChannel", "bus": "adc",
            "quantities": ("voltage",),
            "params": {"samples": ("int", 16), "atten_db": ("number", 11)}},
    "sht3x": {"module": "drivers.sht3x", "cls": "SHT3x", "bus": "i2c",
              "quantities": ("temperature", "humidity"), "addresses": (0x44, 0x45),
              "params": {"repeatability": ("str", "high")}},
    "sht4x": {"module": "drivers.sht4x", "cls": "SHT4x", "bus": "i2c",
              "quantities": ("temperature", "humidity"), "addresses": (0x44, 0x45, 0x46),
              "params": {"precision": ("str", "high")}},
    "bme280": {"module": "drivers.bme280", "cls": "BME280", "bus": "i2c",
               "quantities": ("temperature", "humidity", "pressure"), "addresses": (0x76, 0x77),
               "params": {"oversampling": ("int", 1)}},
    "ds18x20": {"module": "drivers.onewire_temp", "cls": "DS18X20Sensor", "bus": "onewire",
                "quantities": ("temperature",),
                "params": {"index": ("int", 0)}},
    "dht22": {"module": "drivers.dht22", "cls": "DHT22Sensor", "bus": "pin",
              "quantities": ("temperature", "humidity"), "params": {}},
    "system": {"module": "drivers.system", "cls": "System", "bus": "system",
               "quantities": ("mcu_temperature", "free_heap", "cpu_freq", "wifi_rssi", "uptime",
                              "reset_cause", "boot_count", "loop_utilisation"),
               "params": {}},
}


def driver_class(name):
    """The driver class registered as `name` (KeyError names the known drivers)."""
    spec = DRIVERS.get(name)
    if spec is None:
        raise KeyError("unknown driver %r (known: %s)" % (name, ", ".join(sorted(DRIVERS))))
    module = __import__(spec["module"], None, None, (spec["cls"],))
    return getattr(module, spec["cls"])
