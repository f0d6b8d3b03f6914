"""Fixtures shared by host-tool tests.

virtual_board: a factory starting VirtualBoards in tmp_path; every board it made is stopped at
teardown (and checked to have left no process behind).

    def test_x(virtual_board):
        vb = virtual_board("grid-001", scenario="stuck")      # VirtualBoard(...) keyword arguments
        with BoardLink(vb.port) as link: ...
"""
import os
import shutil
from pathlib import Path

import pytest

from host_tools.sim.board import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
MPREMOTE = str(ROOT / ".venv" / "bin" / "mpremote")
AMPY = str(ROOT / ".venv" / "bin" / "ampy")


def processes_of(sim_dir):
    """pids of live processes started for the board whose state folder is sim_dir (the
    supervisor, named on its command line, and the MicroPython process, by its environment)."""
    sim_dir = str(Path(sim_dir).resolve())
    env_mark = ("EDGESHADOW_SIM_DIR=" + sim_dir).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is not running
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, IndexError):
            continue
        if env_mark in env or (b"host_tools.sim.supervisor" in cmd and sim_dir.encode() in cmd):
            found.append(int(pid))
    return found


def firmware_without_app(board_dir):
    """Put our firmware, minus app.py, in board_dir/flash: main.py prints its banner and returns
    to the REPL at once, so a test's Ctrl-C never lands in the application's imports (where the
    unix port can deadlock: the supervisor then resets the board, as a watchdog would)."""
    flash = Path(board_dir) / "flash"
    shutil.copytree(ROOT / "firmware", flash, ignore=shutil.ignore_patterns("__pycache__", "app.py"))
    return flash


@pytest.fixture
def virtual_board(tmp_path):
    boards = []

    def make(thing="sim-001", **kw):
        vb = VirtualBoard(tmp_path / thing, thing=thing, **kw)
        boards.append(vb)
        vb.start()
        return vb

    yield make
    for vb in boards:
        vb.stop()
    for vb in boards:
        assert processes_of(vb.sim_dir) == [], f"{vb.thing} left processes behind"
