"""Check a device config against its board before anything reaches the board.

The driver registry (firmware/drivers/registry.py: DRIVERS) is the one source of driver names,
parameters, quantities and I2C addresses; this module reads it as data. Every problem is reported,
each as "path: sentence" (`metrics.voltage.sensor.pin: GPIO4 is an ADC2 pin ...`).
"""
import importlib.util

from host_tools import FIRMWARE_DIR
from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError

_ATTEN = (0, 2.5, 6, 11)
_ROLE_KEYS = ("driver", "quantity", "pin", "bus", "address")
_TYPES = {"int": (int,), "number": (int, float), "str": (str,)}


def _registry():
    spec = importlib.util.spec_from_file_location("_edgeshadow_fw_drivers",
                                                  FIRMWARE_DIR / "drivers" / "registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DRIVERS


DRIVERS = _registry()


def pin_list(pins):
    """[32, 33, 34, 35, 36, 37, 38, 39, 4] -> "GPIO4, GPIO32 to GPIO39"."""
    pins = sorted(set(pins))
    runs, start = [], None
    for i, p in enumerate(pins):
        if start is None:
            start = p
        if i + 1 == len(pins) or pins[i + 1] != p + 1:
            runs.append(f"GPIO{start}" if start == p else
                        f"GPIO{start}, GPIO{p}" if p == start + 1 else f"GPIO{start} to GPIO{p}")
            start = None
    return ", ".join(runs)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_adc_pin(where, pin, board):
    adc = board.get("adc_pins", [])
    name = board.get("name", "?")
    if not _is_int(pin):
        return [f"{where}: must be a GPIO number"]
    if pin in adc:
        return []
    can = f"ADC1 pins on {name}: {pin_list(adc)}" if adc else f"{name} has no usable ADC pins"
    if pin in board.get("adc2_pins", []):
        return [f"{where}: GPIO{pin} is an ADC2 pin, and on the {board.get('chip', 'ESP32').upper()} "
                f"ADC2 cannot be read while Wi-Fi is on; use an ADC1 pin ({can})"]
    return [f"{where}: GPIO{pin} cannot do ADC on {name}; use one of the {can}"]


def check_sensor(metric, sensor, board):
    """Problems with one metric's sensor dict (already chosen: config or board default)."""
    where = f"metrics.{metric}.sensor"
    if not isinstance(sensor, dict):
        return [f"{where}: must be an object like {{\"driver\": \"ac_rms\", \"pin\": 34}}"]
    name = sensor.get("driver")
    spec = DRIVERS.get(name)
    if spec is None:
        return [f"{where}.driver: unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})"]
    problems = []
    for key, value in sensor.items():
        if key in _ROLE_KEYS:
            continue
        if key not in spec["params"]:
            takes = ", ".join(sorted(spec["params"])) or "no extra parameters"
            problems.append(f"{where}.{key}: not a parameter of {name} (it takes: {takes})")
            continue
        kind = spec["params"][key][0]
        if isinstance(value, bool) or not isinstance(value, _TYPES[kind]):
            problems.append(f"{where}.{key}: must be {'an integer' if kind == 'int' else 'a ' + kind}")
    quantity = sensor.get("quantity")
    if quantity is not None and quantity not in spec["quantities"]:
        problems.append(f"{where}.quantity: {name} reads {', '.join(spec['quantities'])}, "
                        f"not {quantity!r}")
    bus = spec["bus"]
    if bus == "adc":
        if "pin" not in sensor:
            problems.append(f"{where}.pin: required for {name} (an ADC pin: "
                            f"{pin_list(board.get('adc_pins', []))})")
        else:
            problems += _check_adc_pin(f"{where}.pin", sensor["pin"], board)
        atten = sensor.get("atten_db", board.get("adc_atten_db", 11))
        if atten not in _ATTEN:
            problems.append(f"{where}.atten_db: must be one of 0, 2.5, 6, 11 (dB)")
    if name == "ac_rms":
        hz = sensor.get("mains_hz", board.get("mains_hz", 50))
        spc = sensor.get("samples_per_cycle", spec["params"]["samples_per_cycle"][1])
        cycles = sensor.get("cycles", spec["params"]["cycles"][1])
        if isinstance(hz, (int, float)) and not 40 <= hz <= 70:
            problems.append(f"{where}.mains_hz: {hz} Hz is not a mains frequency (50 or 60)")
        if _is_int(spc) and spc < 4:
            problems.append(f"{where}.samples_per_cycle: at least 4 samples per cycle")
        if _is_int(cycles) and cycles < 1:
            problems.append(f"{where}.cycles: at least one whole cycle")
        if _is_int(spc) and _is_int(cycles) and spc * cycles > 20000:
            problems.append(f"{where}: samples_per_cycle * cycles = {spc * cycles}; at most 20000")
    if bus == "i2c":
        addr = sensor.get("address", spec["addresses"][0])
        allowed = " or ".join(f"0x{a:02X}" for a in spec["addresses"])
        if not _is_int(addr):
            problems.append(f"{where}.address: must be an integer I2C address ({allowed})")
        elif addr not in spec["addresses"]:
            problems.append(f"{where}.address: 0x{addr:02X} ({addr}) is not an address a {name} "
                            f"answers on; it answers on {allowed}")
        bus_id = sensor.get("bus", board.get("i2c", {}).get("id", 0))
        if bus_id != board.get("i2c", {}).get("id", 0):
            problems.append(f"{where}.bus: board {board.get('name')} wires only I2C bus "
                            f"{board.get('i2c', {}).get('id', 0)}")
    if bus in ("onewire", "pin"):
        pin = sensor.get("pin")
        if not _is_int(pin):
            problems.append(f"{where}.pin: required, a GPIO number")
        elif pin in board.get("input_only_pins", []):
            problems.append(f"{where}.pin: GPIO{pin} is input-only on {board.get('name')}; "
                            f"{name} needs a pin that can drive the line")
    return problems


def check_config(cfg, board):
    """Every problem with cfg's sensors on board (a board dict or name): a list of strings."""
    if isinstance(board, str):
        board = load_board(board)
    problems = []
    devices = {}    # device identity -> (metric, driver)
    for metric, mcfg in sorted((cfg.get("metrics") or {}).items()):
        sensor = mcfg.get("sensor") if isinstance(mcfg, dict) else None
        if sensor is None:
            sensor = board.get("sensors", {}).get(metric)
            if sensor is None:
                problems.append(f"metrics.{metric}: no sensor given, and board {board.get('name')} "
                                f"has no default wiring for {metric!r}; add \"sensor\": {{...}}")
                continue
        found = check_sensor(metric, sensor, board)
        problems += found
        if found:
            continue
        spec = DRIVERS[sensor["driver"]]
        if spec["bus"] == "i2c":
            ident = ("i2c", sensor.get("bus", 0), sensor.get("address", spec["addresses"][0]))
        elif "pin" in sensor:
            ident = ("pin", sensor["pin"])
        else:
            continue
        other = devices.setdefault(ident, (metric, sensor["driver"]))
        if other[1] != sensor["driver"]:
            what = f"I2C address 0x{ident[2]:02X}" if ident[0] == "i2c" else f"GPIO{ident[1]}"
            problems.append(f"metrics.{metric}.sensor: {what} is already used by metric "
                            f"{other[0]!r} through driver {other[1]}")
    return problems


def validate(cfg, board):
    """Raise EdgeshadowError naming every problem; return the board dict when all is well."""
    if isinstance(board, str):
        board = load_board(board)
    problems = check_config(cfg, board)
    if problems:
        raise EdgeshadowError(f"config does not fit board {board.get('name')}: " + "; ".join(problems))
    return board
