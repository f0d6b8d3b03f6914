"""Check a device config before anything reaches a board: THE validator of device configs.

`validate_config(cfg, board)` is the one entry point every command that writes a config calls
(deploy, inject, demo, calibrate, shadow set): the firmware's own checks (firmware/edge/config.py
and edge/checks, run here on CPython exactly as the board runs them at boot), the size a board
can take, and the board check below (sensors, pins, buses of the board definition).
`load_config_file(path, board)` does the same for a file, with one-line errors for a missing file,
a folder, an oversized file or bad JSON.

The driver registry (firmware/drivers/registry.py: DRIVERS) is the one source of driver names,
parameters, quantities and I2C addresses; this module reads it as data. Every problem is reported,
each as "path: sentence" (`metrics.voltage.sensor.pin: GPIO4 is an ADC2 pin ...`).
"""
import importlib.util
import json
import sys
from pathlib import Path

from host_tools import FIRMWARE_DIR
from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError

_ATTEN = (0, 2.5, 6, 11)
_ROLE_KEYS = ("driver", "quantity", "pin", "bus", "address")
_TYPES = {"int": (int,), "number": (int, float), "str": (str,), "bool": (bool,)}
# The largest config a board takes, in bytes of compact JSON. The firmware keeps its whole config
# parsed in RAM: on the ESP32-like runtime a config holds 2.2 times its JSON size of GC heap
# (measured: 16,030 B of JSON -> 34,752 B held), and the firmware has about 8 KB to spare in the
# board's heap (docs/DESIGN.md, Memory). 8 KB is also the most state one shadow update carries
# (edge.shadow.MAX_STATE_BYTES), so a bigger config could never be changed from the cloud.
# The configs in this repository are 0.7 to 1.5 KB.
CONFIG_MAX_BYTES = 8192
# A file bigger than this is not read at all (indented JSON of a config is at most a few times
# its compact size): `inject --config big.bin` fails at once instead of parsing 50 MB.
CONFIG_FILE_MAX_BYTES = 64 * 1024


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
    problems = _check_params(where, name, spec, sensor)
    quantity = sensor.get("quantity")
    if quantity is not None and quantity not in spec["quantities"]:
        problems.append(f"{where}.quantity: {name} reads {', '.join(spec['quantities'])}, "
                        f"not {quantity!r}")
    by_bus = {"adc": _check_adc_sensor, "i2c": _check_i2c_sensor,
              "onewire": _check_line_sensor, "pin": _check_line_sensor}
    if spec["bus"] in by_bus:
        problems += by_bus[spec["bus"]](where, name, spec, sensor, board)
    if name == "ac_rms":
        problems += _check_ac_rms(where, spec, sensor, board)
    return problems


def _check_params(where, name, spec, sensor):
    problems = []
    for key, value in sensor.items():
        if key in _ROLE_KEYS:
            continue
        if key not in spec["params"]:
            takes = ", ".join(sorted(spec["params"])) or "no extra parameters"
            problems.append(f"{where}.{key}: not a parameter of {name} (it takes: {takes})")
            continue
        kind = spec["params"][key][0]
        if (isinstance(value, bool) != (kind == "bool")) or not isinstance(value, _TYPES[kind]):
            what = {"int": "an integer", "bool": "true or false"}.get(kind, "a " + kind)
            problems.append(f"{where}.{key}: must be {what}")
    return problems


def _check_adc_sensor(where, name, spec, sensor, board):
    if "pin" not in sensor:
        problems = [f"{where}.pin: required for {name} (an ADC pin: "
                    f"{pin_list(board.get('adc_pins', []))})"]
    else:
        problems = _check_adc_pin(f"{where}.pin", sensor["pin"], board)
    if sensor.get("atten_db", board.get("adc_atten_db", 11)) not in _ATTEN:
        problems.append(f"{where}.atten_db: must be one of 0, 2.5, 6, 11 (dB)")
    return problems


def _check_ac_rms(where, spec, sensor, board):
    problems = []
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
    return problems


def _check_i2c_sensor(where, name, spec, sensor, board):
    problems = []
    addr = sensor.get("address", spec["addresses"][0])
    allowed = " or ".join(f"0x{a:02X}" for a in spec["addresses"])
    if not _is_int(addr):
        problems.append(f"{where}.address: must be an integer I2C address ({allowed})")
    elif addr not in spec["addresses"]:
        problems.append(f"{where}.address: 0x{addr:02X} ({addr}) is not an address a {name} "
                        f"answers on; it answers on {allowed}")
    wired = board.get("i2c", {}).get("id", 0)
    if sensor.get("bus", wired) != wired:
        problems.append(f"{where}.bus: board {board.get('name')} wires only I2C bus {wired}")
    return problems


def _check_line_sensor(where, name, spec, sensor, board):
    pin = sensor.get("pin")
    if not _is_int(pin):
        return [f"{where}.pin: required, a GPIO number"]
    if pin in board.get("input_only_pins", []):
        return [f"{where}.pin: GPIO{pin} is input-only on {board.get('name')}; "
                f"{name} needs a pin that can drive the line"]
    return []


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


def _firmware_config():
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    from edge import config as edge_config
    return edge_config


def config_problems(cfg, board=None):
    """Every problem of a device config as "key.path: sentence", and the board dict it was checked
    against (None when neither `board` nor the config names one). board: a dict or a name."""
    if not isinstance(cfg, dict):
        return ["(config): must be a JSON object"], None
    edge_config = _firmware_config()
    try:
        edge_config.load(cfg)   # what the firmware runs on /config.json at boot (app.main)
        problems = []
    except edge_config.ConfigError as e:
        problems = list(e.problems)
    size = len(json.dumps(cfg, separators=(",", ":")).encode())
    if size > CONFIG_MAX_BYTES:
        problems.append(f"(config): {size} bytes of JSON; a board takes at most {CONFIG_MAX_BYTES}")
    named = cfg.get("board")
    if isinstance(board, str):
        board = load_board(board)
    if board is None and isinstance(named, str):
        try:
            board = load_board(named)
        except EdgeshadowError:
            from host_tools.device.boards import list_boards
            problems.append(f"board: unknown board {named!r} (known: {', '.join(list_boards())})")
    elif board is not None and isinstance(named, str) and named != board.get("name"):
        problems.append(f"board: the config is for board {named!r}, not {board.get('name')!r}")
    if board is not None and isinstance(cfg.get("metrics"), dict):
        problems += check_config(cfg, board)
    return problems, board


def validate_config(cfg, board=None, where="config"):
    """THE validator of device configs: raise EdgeshadowError naming every problem with its key
    path (`where: 2 problems: interval_s: must be a number >= 1; metrics.voltage.sensor.pin: ...`);
    return the board dict it was checked against, or None. board: a dict, a name, or None for the
    config's own "board" (no board check when it names none)."""
    problems, board = config_problems(cfg, board)
    if problems:
        n = len(problems)
        raise EdgeshadowError(f"{where}: {n} problem{'s' if n > 1 else ''}: " + "; ".join(problems))
    return board


def load_config_file(path, board=None):
    """Read and validate a device config file: (dict, the board dict it fits or None). Every
    failure is one line naming the file: missing, a folder, too big, not JSON, invalid."""
    cfg = read_config_file(path)
    return cfg, validate_config(cfg, board, where=str(path))


def read_config_file(path):
    """The JSON of a config file, unchecked; one-line errors for what cannot be read as one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise EdgeshadowError(f"config {path} is a folder; give a JSON file")
        if size > CONFIG_FILE_MAX_BYTES:
            raise EdgeshadowError(f"config {path} is {_size_text(size)}; a device config is at most "
                                  f"{CONFIG_MAX_BYTES} bytes of JSON (is this the right file?)")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise EdgeshadowError(f"config {path} does not exist") from None
    except UnicodeDecodeError:
        raise EdgeshadowError(f"config {path} is not UTF-8 text (is this the right file?)") from None
    except OSError as e:
        raise EdgeshadowError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise EdgeshadowError(f"config {path} is not valid JSON ({e})") from None
    except RecursionError:
        raise EdgeshadowError(f"config {path} is nested too deeply to be a config") from None
    return cfg


def _size_text(n):
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"
