"""Shared by the fuzz targets: case counts, seeding, regression cases.

Each target runs a fixed number of cases (CI: seeded, the counts below times FUZZ_SCALE, default 1)
and longer on demand: `make fuzz FUZZ_SCALE=20` (or FUZZ_SEED=n for another seed; without it the
run is derandomized, the same cases every time). A failing input is saved under
tests/fuzz/regressions/<target>-<hash>.json and replayed first by its target on every later run.
"""
import hashlib
import json
import os
from pathlib import Path

from hypothesis import HealthCheck, seed, settings

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
SCALE = float(os.environ.get("FUZZ_SCALE") or 1)
SEED = os.environ.get("FUZZ_SEED")
COUNTS = {}   # target -> cases run (printed at the end of the session by conftest.py)


def cases(n):
    return max(1, int(n * SCALE))


def fuzz_settings(n):
    """Hypothesis settings for a target of n cases (before FUZZ_SCALE)."""
    s = settings(max_examples=cases(n), derandomize=SEED is None, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck), print_blob=True)

    def wrap(fn):
        fn = s(fn)
        return seed(int(SEED))(fn) if SEED is not None else fn
    return wrap


def count(target, n=1):
    COUNTS[target] = COUNTS.get(target, 0) + n


def _encode(x):
    if isinstance(x, (bytes, bytearray)):
        return {"__bytes__": bytes(x).hex()}
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    if isinstance(x, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in x.items()]}
    return x


def _decode(x):
    if isinstance(x, dict) and "__bytes__" in x:
        return bytes.fromhex(x["__bytes__"])
    if isinstance(x, dict) and "__dict__" in x:
        return {_decode(k): _decode(v) for k, v in x["__dict__"]}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


_SAVED = {}   # target -> (path, size) of the case saved this session (the smallest one is kept)


def save_regression(target, value):
    """Save a failing input; while hypothesis shrinks, only the smallest failing one is kept."""
    text = json.dumps(_encode(value), sort_keys=True)
    path = REGRESSIONS / f"{target}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    old = _SAVED.get(target)
    if old is not None:
        if old[1] <= len(text):
            return old[0]
        old[0].unlink(missing_ok=True)
    REGRESSIONS.mkdir(exist_ok=True)
    path.write_text(text + "\n")
    _SAVED[target] = (path, len(text))
    return path


def regressions(target):
    return [_decode(json.loads(p.read_text())) for p in sorted(REGRESSIONS.glob(f"{target}-*.json"))]


def guarded(target, check):
    """check(value) that saves value as a regression case when it fails, and counts cases."""
    def run(value):
        count(target)
        try:
            check(value)
        except BaseException:
            save_regression(target, value)
            raise
    return run
