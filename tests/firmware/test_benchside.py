# The board side of bench and calibrate (firmware/benchside.py): sessions read through the board
# layer and the calibration chains, watchdog fed per read, problems a person can fix named.
import json
import os

from _helpers import approx, raises, tmpdir
from _vclock import run
from test_drivers_board import BOARD, FakeMachine, _hw

import benchside

CFG = {"thing": "bench-001", "watchdog_s": 60, "metrics": {
    "voltage": {"unit": "V", "calibration": [{"type": "linear", "gain": 30000.0, "offset": 0.0}]},
    "current": {"unit": "A", "calibration": [{"type": "linear", "gain": 1000.0, "offset": 0.0},
                                             {"type": "round", "decimals": 1}]},
    "temperature": {"unit": "C", "calibration": [{"type": "offset", "value": -1.0}]},
    "humidity": {"unit": "%", "calibration": []}}}


class CountingWDT:
    made = []

    def __init__(self, timeout):
        self.timeout = timeout
        self.feeds = 0
        CountingWDT.made.append(self)

    def feed(self):
        self.feeds += 1


def _machine():
    m = FakeMachine(_hw())  # the line below, on the simulated hardware (simhw)
    m.WDT = lambda timeout=5000: CountingWDT(timeout)
    return m


def _read(n, interval_ms=0):
    """The session's reads with the ADC bursts on a virtual clock (tests/firmware/_vclock.py)."""
    import simhw
    return run(lambda: benchside._session.read(n, interval_ms), simhw)


def _root(cfg=CFG, board=BOARD):
    root = tmpdir("benchside")
    for name, doc in (("config.json", cfg), ("board.json", board)):
        if doc is not None:
            with open(root + "/" + name, "w") as f:
                f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def _cleanup(root):
    for name in os.listdir(root):
        os.remove(root + "/" + name)
    os.rmdir(root)


def test_every_metric_is_read_raw_and_calibrated_through_the_firmware():
    root = _root()
    try:
        info = benchside.start(None, _machine(), root)
        assert info["metrics"] == ["current", "humidity", "temperature", "voltage"]
        assert info["thing"] == "bench-001" and info["board"] == "sim" and not info["virtual"]
        assert info["units"] == {"current": "A", "humidity": "%", "temperature": "C", "voltage": "V"}
        assert info["drivers"] == {"current": "ac_rms", "humidity": "sht3x", "temperature": "sht3x",
                                   "voltage": "ac_rms"}
        assert info["problems"] == [] and info["calibration"]["humidity"] == []
        rows = _read(3)
        assert len(rows) == 3
        for read_us, raws, statuses, cal in rows:
            assert read_us >= 0 and statuses == ["ok"] * 4
            assert approx(cal[0], round(raws[0] * 1000.0, 1), abs_=0.051)
            assert approx(cal[1], raws[1]) and approx(cal[2], raws[2] - 1.0)
            assert approx(cal[3], raws[3] * 30000.0)
        # the simulated line: 24 kV, 450 A, 36 C, 58 %RH (the ADC reads within a percent)
        assert abs(rows[0][3][3] - 24000.0) < 240 and abs(rows[0][3][0] - 450.0) < 4.5
        assert approx(rows[0][3][2], 35.0, abs_=0.1) and approx(rows[0][1][1], 58.0, abs_=0.1)
    finally:
        _cleanup(root)


def test_one_metric_for_calibration_builds_only_its_sensor():
    root = _root()
    try:
        info = benchside.start("temperature", _machine(), root)
        assert info["metrics"] == ["temperature"] and info["units"] == {"temperature": "C"}
        assert info["calibration"] == {"temperature": [{"type": "offset", "value": -1.0}]}
        assert [m for m, _, _, _ in benchside._session.board.metrics] == ["temperature"]
        (read_us, raws, statuses, cal), = _read(1)
        assert statuses == ["ok"] and approx(raws[0], 36.0, abs_=0.1)
    finally:
        _cleanup(root)


def test_the_watchdog_is_made_with_the_firmwares_timeout_and_fed_every_read():
    root = _root()
    try:
        CountingWDT.made = []
        benchside.start(None, _machine(), root)
        wdt, = CountingWDT.made
        assert wdt.timeout == 60000
        _read(4, 1)
        assert wdt.feeds == 4
        benchside._session.feed()
        assert wdt.feeds == 5
        # watchdog_s 0 disables it: nothing is made
        assert benchside.watchdog({"watchdog_s": 0}, _machine()) is None
    finally:
        _cleanup(root)


def test_what_a_person_can_fix_is_named():
    root = _root(cfg=dict(CFG, interval_s="ten"))
    try:
        e = raises(benchside.BenchError, benchside.start, None, _machine(), root)
        assert str(e) == "/config.json is not valid: interval_s: must be a number >= 1", str(e)
    finally:
        _cleanup(root)
    root = _root()
    try:
        e = raises(benchside.BenchError, benchside.start, "pressure", _machine(), root)
        assert str(e) == "no metric 'pressure' in /config.json (it has: current, humidity, temperature, voltage)"
    finally:
        _cleanup(root)
    root = _root(cfg=None)
    try:
        e = raises(benchside.BenchError, benchside.start, None, _machine(), root)
        assert str(e) == "the board has no %s/config.json: deploy with `edgeshadow deploy`" % root
    finally:
        _cleanup(root)
    root = _root(cfg="{not json")
    try:
        e = raises(benchside.BenchError, benchside.start, None, _machine(), root)
        assert str(e).endswith("/config.json is not valid JSON: fix it with `edgeshadow deploy`")
    finally:
        _cleanup(root)
