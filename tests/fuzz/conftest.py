"""The fuzz tier: prints how many cases each target ran (see _fuzz.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fuzz  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if _fuzz.COUNTS:
        total = sum(_fuzz.COUNTS.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(_fuzz.COUNTS.items()))
        terminalreporter.write_line(f"fuzz cases: {total} ({parts})")
