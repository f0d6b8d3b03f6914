# Builds the board layer's sensors (board.Board) from the board definition and the device config:
# imported only while a Board is made, then unloaded with the driver registry (code on a board is in
# RAM). See board.py for what it builds.
from drivers.registry import DRIVERS, driver_class

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


def build(b, board_def, cfg):
    """Fill in Board b: its drivers (one per device), metrics and problems."""
    b.problems = []
    b._i2c = {}
    b._i2c_def = board_def.get("i2c", {})
    b._drivers = {}    # key -> driver
    b.metrics = []     # (metric, key or None, index, (lo, hi) or None)
    b.system = None
    for metric, mcfg in sorted(cfg.get("metrics", {}).items()):
        where = "metrics.%s.sensor" % metric
        sensor = sensor_for(metric, mcfg, board_def)
        if sensor is None:
            b.problems.append("%s: no sensor given and board %s has no default wiring for it"
                              % (where, board_def.get("name", "?")))
            b.metrics.append((metric, None, 0, None))
            continue
        try:
            name, index, params = resolve(metric, sensor, board_def)
            key = _key(name, params)
            driver = b._drivers.get(key)
            if driver is None:
                driver = _build(b, name, dict(params))
                b._drivers[key] = driver
                if name == "system":
                    b.system = driver
            ranges = getattr(driver, "RANGES", None)
            b.metrics.append((metric, key, index, ranges[index] if ranges else None))
        except Exception as e:    # bad wiring must not stop the other sensors
            b.problems.append("%s: %s" % (where, e))
            b.metrics.append((metric, None, 0, None))
    del b._i2c, b._i2c_def  # the buses live on in the drivers that use them


def _bus(b, bus_id):
    bus = b._i2c.get(bus_id)
    if bus is None:
        m = b.machine
        i2c = b._i2c_def
        bus = m.I2C(bus_id, scl=m.Pin(i2c.get("scl", 22)), sda=m.Pin(i2c.get("sda", 21)),
                    freq=i2c.get("freq", 100000))
        b._i2c[bus_id] = bus
    return bus


def _adc(b, pin, atten_db):
    m = b.machine
    atten = getattr(m.ADC, _ATTN_NAMES[atten_db])
    adc = m.ADC(m.Pin(pin))
    adc.atten(atten)
    return adc


def _build(b, name, params):
    cls = driver_class(name)
    bus = DRIVERS[name]["bus"]
    m = b.machine
    if bus == "adc":
        pin = params.pop("pin")
        return cls(_adc(b, pin, params.get("atten_db", 11)), **params)
    if bus == "i2c":
        return cls(_bus(b, params.pop("bus")), **params)
    if bus == "onewire":
        import onewire
        import ds18x20
        return cls(ds18x20.DS18X20(onewire.OneWire(m.Pin(params.pop("pin")))), **params)
    if bus == "pin":
        import dht
        return cls(dht.DHT22(m.Pin(params.pop("pin"))), **params)
    return cls(mcu_temperature=_mcu_temperature(), freq=getattr(m, "freq", None),
               rssi=_rssi(), reset_cause=getattr(m, "reset_cause", None),
               boot_count=b.boot_count)


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
