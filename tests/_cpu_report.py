"""CPU and wall time per test file. With CPU_REPORT_DIR set (`make test CPU_REPORT=DIR`;
tests/conftest.py loads this plugin then) each worker writes there the user+sys CPU of itself and
of the child processes it waited for, per file (a file runs whole on one worker under --dist
loadfile) and per test (a module fixture's processes count where they are stopped).
`python tests/_cpu_report.py DIR` prints the table, most CPU first; `DIR --tests N`: the N
tests that cost most."""
import json
import os
import resource
import sys
import time
from collections import defaultdict

import pytest

_TOTALS = defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # file -> [cpu self, cpu children, wall, tests]
_TESTS = {}  # nodeid -> [cpu self, cpu children, wall]


def _cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    s0, c0 = _cpu()
    t0 = time.monotonic()
    yield
    s1, c1 = _cpu()
    row = _TOTALS[item.nodeid.split("::")[0]]
    row[0] += s1 - s0
    row[1] += c1 - c0
    row[2] += time.monotonic() - t0
    row[3] += 1
    _TESTS[item.nodeid] = [s1 - s0, c1 - c0, time.monotonic() - t0]


def pytest_sessionfinish(session):
    out = os.environ.get("CPU_REPORT_DIR")
    if out and _TOTALS:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.path.join(out, f"{worker}.json"), "w") as f:
            json.dump(dict(_TOTALS), f)
        with open(os.path.join(out, f"{worker}.tests"), "w") as f:
            json.dump(_TESTS, f)


def tests(folder, top=40):
    rows = {}
    for name in os.listdir(folder):
        if name.endswith(".tests"):
            with open(os.path.join(folder, name)) as f:
                rows.update(json.load(f))
    for k, (s, c, w) in sorted(rows.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:top]:
        print(f"{s + c:7.1f} {s:7.1f} {c:7.1f} {w:7.1f}  {k}")


def main(folder):
    rows = {}
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                for k, v in json.load(f).items():
                    rows[k] = v + [name[:-5]]
    tot = [sum(r[i] for r in rows.values()) for i in range(3)]
    print(f"{'file':52} {'cpu':>7} {'self':>7} {'child':>7} {'wall':>7} {'n':>4} worker")
    for k, (s, c, w, n, wk) in sorted(rows.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        print(f"{k:52} {s + c:7.1f} {s:7.1f} {c:7.1f} {w:7.1f} {n:4} {wk}")
    print(f"{'total':52} {tot[0] + tot[1]:7.1f} {tot[0]:7.1f} {tot[1]:7.1f} {tot[2]:7.1f}")


if __name__ == "__main__":
    tests(sys.argv[1], int(sys.argv[3])) if sys.argv[2:3] == ["--tests"] else main(sys.argv[1])
