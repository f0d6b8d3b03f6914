"""Test set-up shared by every tier.

Firmware tests (tests/firmware/test_*.py) are plain `def test_...():` functions with `assert`,
no fixtures, so the same file runs on three runtimes:
- under CPython, pytest collects them as usual;
- each test function is also collected as `<name>[micropython]` and run inside the real
  MicroPython unix port (.venv/bin/micropython) by tests/firmware/_mprun.py;
- and as `<name>[esp32like]`, inside the ESP32-like runtime (`make esp32like`: 32-bit objects,
  30-bit ticks, float32) with an ESP32-WROOM's GC heap. Where that runtime is not built, these are
  skipped with the reason (make setup says why it was not built).
A test that passes only on 64-bit doubles or a large heap therefore fails the run.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FW_TESTS = ROOT / "tests" / "firmware"
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
ESP32LIKE = ROOT / ".venv" / "bin" / "micropython-esp32like"
BOARD_HEAP = 112000  # boards/_common.json gc_heap: an ESP32-WROOM without PSRAM

for p in (str(FIRMWARE), str(FW_TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)


def micropython_env():
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{FIRMWARE}:{FW_TESTS}:.frozen"
    return env


def pytest_collect_file(parent, file_path):
    if file_path.parent == FW_TESTS and file_path.name.startswith("test_") and file_path.suffix == ".py":
        return MicroPythonFile.from_parent(parent, path=file_path)
    return None


class MicroPythonFile(pytest.File):
    def collect(self):
        tree = ast.parse(self.path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                yield MicroPythonItem.from_parent(self, name=f"{node.name}[micropython]", func=node.name)
                yield MicroPythonItem.from_parent(self, name=f"{node.name}[esp32like]", func=node.name,
                                                  runtime="esp32like")


class MicroPythonFailure(Exception):
    pass


class MicroPythonItem(pytest.Item):
    def __init__(self, *, func, runtime="unix", **kw):
        super().__init__(**kw)
        self.func = func
        self.runtime = runtime
        self.add_marker("micropython")

    def runtest(self):
        if self.runtime == "esp32like":
            if not ESP32LIKE.exists():
                pytest.skip("the ESP32-like runtime is not built (`make esp32like`; make setup builds "
                            "it when a MicroPython source is found)")
            cmd = [str(ESP32LIKE), "-X", f"heapsize={BOARD_HEAP}"]
        else:
            cmd = [str(MICROPYTHON)]
        proc = subprocess.run(
            cmd + [str(FW_TESTS / "_mprun.py"), self.path.stem, self.func],
            cwd=str(FW_TESTS), env=micropython_env(), capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0 or not proc.stdout.rstrip().endswith("PASS"):
            raise MicroPythonFailure(proc.stdout + proc.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"failed inside MicroPython:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


# -- the hardware tier: tests/hardware runs only against a board named with --port --------------

def pytest_addoption(parser):
    group = parser.getgroup("edgeshadow")
    group.addoption("--port", help="serial port of a board holding the firmware (a real ESP32 on "
                                   "USB or a virtual board's pty): runs tests/hardware")
    group.addoption("--samples", type=int, default=10, help="bench reads per metric (tests/hardware)")
    group.addoption("--connect", action="store_true",
                    help="tests/hardware also makes the board open a TLS connection to its endpoint")


def pytest_configure(config):
    if os.environ.get("CPU_REPORT_DIR"):  # make test CPU_REPORT=DIR: CPU per test file
        sys.path.insert(0, str(ROOT / "tests"))
        import _cpu_report
        config.pluginmanager.register(_cpu_report, "cpu_report")


def pytest_ignore_collect(collection_path, config):
    """`pytest tests` (make test) leaves tests/hardware out unless --port names a board; named
    on its own without --port, its tests are skipped with the reason."""
    if collection_path.name == "hardware" and collection_path.parent == ROOT / "tests":
        return None if config.getoption("--port") else True
    return None


# -- order: the longest files first -----------------------------------------------------------------
# make test runs pytest-xdist with --dist loadfile: a worker takes whole files in collection order.
# The files that take longest start first, so the workers end together instead of one of them
# picking up a long file last; order within a file is unchanged. Measured (make test CPU_REPORT=DIR,
# 2026-12-01, wall per file under load): the soak (a fixed run) first, then the CPU-heavy ones
# (learned_model: training and three runtimes' replays in the worker itself), then by wall.
LONG_FIRST = ("host/test_soak.py", "host/test_learned_model.py", "host/test_ota_fleet.py",
              "host/test_readme.py", "host/test_bench.py", "host/test_memory_budget.py",
              "host/test_provision.py", "host/test_deploy.py", "host/test_demo.py",
              "host/test_sim_board.py", "host/test_historian.py", "host/test_hardware_tier.py",
              "fuzz/test_fuzz_board.py", "host/test_cli_conventions.py", "host/test_ota_cli.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        try:
            rel = item.path.relative_to(ROOT / "tests").as_posix()
        except ValueError:
            return len(LONG_FIRST)
        return LONG_FIRST.index(rel) if rel in LONG_FIRST else len(LONG_FIRST)
    items.sort(key=rank)  # stable: the rest keep their collection order
