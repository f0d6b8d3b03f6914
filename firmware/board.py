# The board layer: builds the sensor drivers from the board definition (/board.json) and the
# device config, reads them, and joins Wi-Fi. The only firmware module that touches machine (and esp32,
# network, onewire, ds18x20, dht); drivers get the hardware objects it makes.
#
# A metric's source is its config's "sensor" dict, else the board's default wiring
# (board["sensors"][metric]); missing driver parameters come from the board ("mains_hz",
# "adc_atten_db", "i2c") and then from the driver registry's defaults. Metrics whose sensor dicts
# describe the same device (driver, bus, pin/address, parameters) share one driver, read once per
# cycle. Nothing here raises into the sampling loop: a sensor that cannot be built is reported in
# `problems` and reads as None + "error".
from compat import unload


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
        self.boot_count = boot_count
        import board_build  # the builder and the driver registry: in RAM only while building
        board_build.build(self, board_def, cfg)
        unload("board_build", "drivers.registry")

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


async def join_wifi(w, log):
    """Join the Wi-Fi network w ({"ssid", "password"}) as a station, within 15 s (OSError if not).
    Nothing to do where there is no `network` module: the unix port and CPython use the host's."""
    try:
        import network
    except ImportError:
        return
    import asyncio
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return
    wlan.connect(w["ssid"], w["password"])
    for _ in range(150):
        if wlan.isconnected():
            log("wifi: connected")
            return
        await asyncio.sleep(0.1)
    raise OSError("wifi: could not join %r within 15 s" % w["ssid"])


def heap_reserved():
    """GC heap that is not the firmware's: none on a board; on the virtual board, what its Python
    stand-ins for the ESP32's C modules hold (the unix port runs them in the same heap)."""
    try:
        import machine
    except ImportError:
        return 0
    return getattr(machine, "HEAP_RESERVED", 0)
