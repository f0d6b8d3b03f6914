"""`edgeshadow boards`: list the board definitions, show one, check a config against one."""
from pathlib import Path

from host_tools.device import board_check
from host_tools.device.boards import list_boards, load_board
from host_tools.errors import EdgeshadowError
from host_tools.output import add_json_arg, emit


def register(sub):
    p = sub.add_parser("boards", help="list board definitions; show one; check a config against one",
                       description="Boards are data: boards/<name>.json over boards/_common.json. "
                                   "Without a verb, list them.")
    add_json_arg(p, "the boards")
    p.set_defaults(func=do_list)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("list", help="list the boards (the default)")
    add_json_arg(ls, "the boards")
    ls.set_defaults(func=do_list)
    show = verbs.add_parser("show", help="show one board, merged over the shared defaults")
    show.add_argument("name", metavar="NAME")
    add_json_arg(show, "the merged definition")
    show.set_defaults(func=do_show)
    chk = verbs.add_parser("check", help="check a device config against a board: the firmware's own "
                                         "validator, its size, and the board's sensors and pins")
    chk.add_argument("config", type=Path, metavar="CONFIG.json")
    chk.add_argument("--board", metavar="NAME", help="board name (default: the config's \"board\")")
    add_json_arg(chk, "the problems found")
    chk.set_defaults(func=do_check)


def _adc_text(b):
    return board_check.pin_list(b.get("adc_pins", [])) or "none"


def do_list(args):
    names = list_boards()
    boards = [load_board(n) for n in names]
    width = max(len(n) for n in names)
    doc = [{"name": b["name"], "chip": b.get("chip"), "flash_size": b.get("flash_size"),
            "image_offset": b.get("image_offset"), "adc_pins": b.get("adc_pins", [])} for b in boards]

    def text():
        print(f"{'BOARD':<{width}}  {'CHIP':<8} {'FLASH':>6}  {'IMAGE AT':>8}  ADC PINS")
        for b in boards:
            print(f"{b['name']:<{width}}  {b.get('chip', '?'):<8} {b.get('flash_size', 0) // 1048576:>4} MB"
                  f"  {hex(b.get('image_offset', 0)):>8}  {_adc_text(b)}")
    emit(args, {"boards": doc}, text)
    return 0


def do_show(args):
    b = load_board(args.name)

    def text():
        i2c = b.get("i2c", {})
        rows = [("name", b["name"]), ("description", b.get("description", "")),
                ("chip", b.get("chip", "?")), ("flash", f"{b.get('flash_size', 0) // 1048576} MB"),
                ("image offset", hex(b.get("image_offset", 0))), ("baud", b.get("baud")),
                ("mpy arch", b.get("mpy_arch")),
                ("i2c", f"bus {i2c.get('id', 0)}: SDA GPIO{i2c.get('sda')}, SCL GPIO{i2c.get('scl')}, "
                        f"{i2c.get('freq', 0) // 1000} kHz"),
                ("adc pins", _adc_text(b) + (" (ADC1: usable with Wi-Fi on)" if b.get("chip") == "esp32" else "")),
                ("adc2 pins", (board_check.pin_list(b.get("adc2_pins", [])) or "none") + " (not with Wi-Fi)"),
                ("status led", f"GPIO{b.get('status_led')}"), ("mains", f"{b.get('mains_hz', 50)} Hz")]
        for key, value in rows:
            print(f"{key:<13} {value}")
        print("sensors (default wiring):")
        for metric, s in sorted(b.get("sensors", {}).items()):
            where = f"GPIO{s['pin']}" if "pin" in s else (f"I2C 0x{s['address']:02X}" if "address" in s else "")
            extra = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("driver", "pin", "address"))
            print(f"  {metric:<12} {s.get('driver', '?'):<8} {where:<10} {extra}")
        for pin, cfg in sorted(b.get("sim_hardware", {}).get("adc", {}).items()):
            print(f"  simulated: GPIO{pin} carries {cfg['signal']} at 1 V RMS per {cfg['ratio']:g} "
                  f"(bias {cfg.get('bias_v', 0)} V)")

    emit(args, b, text)
    return 0


def do_check(args):
    """The one config validator (board_check.config_problems: the firmware's checks and the
    board's), every problem on its own line."""
    cfg = board_check.read_config_file(args.config)
    name = args.board or (cfg.get("board") if isinstance(cfg, dict) else None)
    if not name:
        raise EdgeshadowError(f"{args.config} names no board", hint="pass --board NAME")
    problems, board = board_check.config_problems(cfg, name)
    doc = {"config": str(args.config), "board": name, "ok": not problems, "problems": problems}

    def text():
        for p in problems:
            print(f"{args.config}: {p}")
        if not problems:
            print(f"{args.config}: fits board {name}")
    emit(args, doc, text)
    if problems:
        raise EdgeshadowError(f"{len(problems)} problem(s): the config does not fit board {name}")
    return 0
