"""edgeshadow host tools: the Python package behind the `edgeshadow` command."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"
CERTS_DIR = ROOT / "certs"
DATA_DIR = Path(__file__).resolve().parent / "data"
VENV_BIN = ROOT / ".venv" / "bin"
