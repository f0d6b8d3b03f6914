# The board layer: builds the sensor drivers from the board definition (/board.json) and the
# device config, and reads them. The only firmware module that touches machine (and esp32,
# network, onewire, ds18x20, dht); drivers get the hardware objects it makes.
#
# A metric's source is its config's "sensor" dict, else the board's default wiring
# (board["sensors"][metric]); missing driver parameters come from the board ("mains_hz",
# "adc_atten_db", "i2c") and then from the driver registry's defaults. Metrics whose sensor dicts
# describe the same device (driver, bus, pin/address, parameters) share one driver, read once per
# cycle. Nothing here raises into the sampling loop: a sensor that cannot be built is reported in
# `problems` and reads as None + "error".
import json

from compat import unload

_ATTN_NAMES = {0: "ATTN_0DB", 2.5: "ATTN_2_5DB", 6: "ATTN_6DB", 11: "ATTN_11DB"}
_ROLE_KEYS = ("driver", "quantity")    # keys that pick what to read, not which device


def sensor_for(metric, mcfg, board_def):
    """The sensor dict for a metric (config first, then board wiring), or None."""
    sensor = mcfg.get("sensor") if isinstance(mcfg, dict) else None
    if sensor is None:
        sensor = board_def.get("sensors", {}).get(metric)
    return sensor


def resolve(metric, sensor, board_def):
    """(driver name, quantity index, device parameters) with every default filled in."""
    from drivers.registry import DRIVERS
    name = sensor.get("driver")
    spec = DRIVERS.get(name)
    if spec is None:
        raise ValueError("unknown driver %r (known: %s)" % (name, ", ".join(sorted(DRIVERS))))
    params = {}
    for key, (_, default) in spec["params"].items():
        params[key] = default
    if "mains_hz" in params and "mains_hz" in board_def:
        params["mains_hz"] = board_def["mains_hz"]
    if "atten_db" in params and "adc_atten_db" in board_def:
        params["atten_db"] = board_def["adc_atten_db"]
    for key, value in sensor.items():
        if key not in _ROLE_KEYS:
            params[key] = value
    if spec["bus"] == "i2c":
        params.setdefault("bus", board_def.get("i2c", {}).get("id", 0))
        params.setdefault("address", spec["addresses"][0])
    quantities = spec["quantities"]
    quantity = sensor.get("quantity")
    if quantity is None:
        quantity = metric if metric in quantities else quantities[0]
    if quantity not in quantities:
        raise ValueError("driver %s has no quantity %r (it reads %s)"
                         % (name, quantity, ", ".join(quantities)))
    return name, quantities.index(quantity), params


def _key(name, params):
    return name + ":" + ",".join("%s=%r" % (k, params[k]) for k in sorted(params))


def bump_boot_count(path="/boot_count"):
    """Read, increment and store the boot counter; returns the new count (None if unwritable)."""
    count = 0
    try:
        with open(path) as f:
            count = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass
    count += 1
    try:
        with open(path, "w") as f:
            f.write(str(count))
    except OSError:
        return None
    return count


class Board:
    def __init__(self, board_def, cfg, machine=None, boot_count=None):
        if machine is None:
            import machine
        self.machine = machine
        self.board_def = board_def
        self.boot_count = boot_count
        self.problems = []
        self._i2c = {}
        self._drivers = {}    # key -> driver
        self.metrics = []     # (metric, key or None, index, (lo, hi) or None)
        self.system = None
        from drivers.registry import DRIVERS  # while building only: unloaded below
        self._registry = DRIVERS
        for metric, mcfg in sorted(cfg.get("metrics", {}).items()):
            where = "metrics.%s.sensor" % metric
            sensor = sensor_for(metric, mcfg, board_def)
            if sensor is None:
                self.problems.append("%s: no sensor given and board %s has no default wiring for it"
                                     % (where, board_def.get("name", "?")))
                self.metrics.append((metric, None, 0, None))
                continue
            try:
                name, index, params = resolve(metric, sensor, board_def)
                key = _key(name, params)
                driver = self._drivers.get(key)
                if driver is None:
                    driver = self._build(name, dict(params))
                    self._drivers[key] = driver
                    if name == "system":
                        self.system = driver
                ranges = getattr(driver, "RANGES", None)
                self.metrics.append((metric, key, index, ranges[index] if ranges else None))
            except Exception as e:    # bad wiring must not stop the other sensors
                self.problems.append("%s: %s" % (where, e))
                self.metrics.append((metric, None, 0, None))
        del self._registry
        unload("drivers.registry")

    @classmethod
    def from_files(cls, cfg, board_path="/board.json", **kw):
        with open(board_path) as f:
            return cls(json.load(f), cfg, **kw)

    # -- building ---------------------------------------------------------------------------
    def _bus(self, bus_id):
        bus = self._i2c.get(bus_id)
        if bus is None:
            m = self.machine
            i2c = self.board_def.get("i2c", {})
            bus = m.I2C(bus_id, scl=m.Pin(i2c.get("scl", 22)), sda=m.Pin(i2c.get("sda", 21)),
                        freq=i2c.get("freq", 100000))
            self._i2c[bus_id] = bus
        return bus

    def _adc(self, pin, atten_db):
        m = self.machine
        atten = getattr(m.ADC, _ATTN_NAMES[atten_db])
        adc = m.ADC(m.Pin(pin))
        adc.atten(atten)
        return adc

    def _build(self, name, params):
        from drivers.registry import driver_class
        cls = driver_class(name)
        bus = self._registry[name]["bus"]
        m = self.machine
        if bus == "adc":
            pin = params.pop("pin")
            return cls(self._adc(pin, params.get("atten_db", 11)), **params)
        if bus == "i2c":
            return cls(self._bus(params.pop("bus")), **params)
        if bus == "onewire":
            import onewire
            import ds18x20
            return cls(ds18x20.DS18X20(onewire.OneWire(m.Pin(params.pop("pin")))), **params)
        if bus == "pin":
            import dht
            return cls(dht.DHT22(m.Pin(params.pop("pin"))), **params)
        return cls(mcu_temperature=_mcu_temperature(), freq=getattr(m, "freq", None),
                   rssi=_rssi(), reset_cause=getattr(m, "reset_cause", None),
                   boot_count=self.boot_count)

    # -- reading ----------------------------------------------------------------------------
    def read_all(self):
        """(raw, status): {metric: value or None}, {metric: status string}."""
        results = {}
        for key, driver in self._drivers.items():
            try:
                results[key] = driver.read()
            except Exception:    # a driver bug must not stop the loop
                results[key] = (None, "error")
        raw = {}
        status = {}
        for metric, key, index, limits in self.metrics:
            if key is None:
                raw[metric], status[metric] = None, "error"
                continue
            values, st = results[key]
            v = values[index] if values is not None else None
            if v is None:
                raw[metric], status[metric] = None, ("no_data" if st == "ok" else st)
            elif limits is not None and not limits[0] <= v <= limits[1]:
                raw[metric], status[metric] = None, "out_of_physical_range"
            else:
                raw[metric], status[metric] = v, "ok"
        return raw, status

    def set_loop_utilisation(self, busy_ms, interval_ms):
        if self.system is not None:
            self.system.set_loop_utilisation(busy_ms, interval_ms)


def _mcu_temperature():
    try:
        import esp32
    except ImportError:
        return None
    if hasattr(esp32, "mcu_temperature"):    # ESP32-S3/C3; the classic ESP32 has raw_temperature
        return esp32.mcu_temperature
    if hasattr(esp32, "raw_temperature"):
        return lambda: (esp32.raw_temperature() - 32) / 1.8
    return None


def _rssi():
    try:
        import network
    except ImportError:
        return None
    wlan = network.WLAN(network.STA_IF)

    def rssi():
        if not wlan.isconnected():
            return None
        try:
            return wlan.status("rssi")
        except (ValueError, TypeError, OSError):
            return wlan.config("rssi")
    return rssi


def heap_reserved():
    """GC heap that is not the firmware's: none on a board; on the virtual board, what its Python
    stand-ins for the ESP32's C modules hold (the unix port runs them in the same heap)."""
    try:
        import machine
    except ImportError:
        return 0
    return getattr(machine, "HEAP_RESERVED", 0)
