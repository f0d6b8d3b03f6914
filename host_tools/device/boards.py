"""Board definitions are data: boards/<name>.json overlaid on boards/_common.json."""
import json

from host_tools import BOARDS_DIR
from host_tools.errors import EdgeshadowError

COMMON = "_common"


def list_boards(boards_dir=BOARDS_DIR):
    return sorted(p.stem for p in boards_dir.glob("*.json") if not p.stem.startswith("_"))


def _read(path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgeshadowError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})")


def _overlay(base, top):
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


def load_board(name, boards_dir=BOARDS_DIR):
    """The board definition `name`, merged over the shared defaults."""
    path = boards_dir / f"{name}.json"
    if name.startswith("_") or not path.is_file():
        raise EdgeshadowError(f"unknown board '{name}'",
                              hint=f"known boards: {', '.join(list_boards(boards_dir))}")
    board = _overlay(_read(boards_dir / f"{COMMON}.json"), _read(path))
    board["name"] = name
    return board
