"""`edgeshadow bench`: the verdicts on their own, then on the virtual board (real MicroPython running
the firmware's drivers and calibration against simulated hardware) through one BoardLink."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import bench
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"min": 90.0, "max": 110.0, "noise_max": 1.0, "stuck_stdev_max": 0, "max_failed": 0}


def series(values):
    return [v for v in values], ["ok"] * len(values), [v * 100 for v in values]


def test_nominal_series_passes_with_statistics():
    raw = [1.00, 1.01, 0.99, 1.00, 1.005]
    r = bench.judge("voltage", raw, ["ok"] * 5, [x * 100 for x in raw], LIMITS, unit="V")
    assert r["result"] == "PASS" and r["reasons"] == []
    assert r["calibrated"]["mean"] == pytest.approx(100.1)
    assert r["calibrated"]["min"] == pytest.approx(99.0) and r["calibrated"]["max"] == pytest.approx(101.0)
    assert r["raw"]["stdev"] == pytest.approx(0.007416, rel=1e-3)
    assert r["failed"] == {}


def test_each_failure_names_its_reason():
    stuck = bench.judge("t", [1.0] * 6, ["ok"] * 6, [100.0] * 6, LIMITS, unit="C")
    assert stuck["result"] == "FAIL" and stuck["reasons"][0].startswith("stuck: 6 raw readings")
    gone = bench.judge("t", [None] * 4, ["disconnected"] * 4, [None] * 4, LIMITS)
    assert gone["result"] == "FAIL" and gone["failed"] == {"disconnected": 4}
    assert gone["reasons"] == ["disconnected: 4 of 4 reads failed (disconnected x4)"]
    noisy = bench.judge("t", [0.9, 1.1, 0.95, 1.05], ["ok"] * 4, [90.0, 110.0, 95.0, 105.0], LIMITS, unit="V")
    assert noisy["result"] == "FAIL" and noisy["reasons"] == ["noisy: stdev 9.129 V above the limit 1 V"]
    low = bench.judge("t", [0.5, 0.51, 0.49], ["ok"] * 3, [50.0, 51.0, 49.0], LIMITS, unit="V")
    assert low["reasons"] == ["out of range: mean 50 V outside expected 90..110 V"]
    some = bench.judge("t", [1.0, None, 1.01], ["ok", "crc", "ok"], [100.0, None, 101.0], LIMITS)
    assert some["reasons"] == ["failed reads: 1 of 3 (crc x1)"]
    assert bench.judge("t", [1.0, None, 1.01], ["ok", "crc", "ok"], [100.0, None, 101.0],
                       dict(LIMITS, max_failed=1))["result"] == "PASS"


def test_limits_layer_defaults_driver_board_sku_and_rating():
    data = {"defaults": {"current": {"min": 0, "noise_max": 9}},
            "drivers": {"ac_rms": {"current": {"raw_noise_max": 0.01}}},
            "boards": {"sim": {"current": {"noise_max": 7}}},
            "skus": {"MV-200A": {"current": {"noise_max": 2}}}}
    lim = bench.limits_for("current", board="sim", sku={"name": "MV-200A", "ratings": {"current": 200}},
                           driver="ac_rms", data=data)
    assert lim == {"min": 0, "noise_max": 2, "raw_noise_max": 0.01, "max": 200}
    assert bench.limits_for("current", board="other", data=data) == {"min": 0, "noise_max": 9}


def test_bundled_limits_load_and_bad_limits_are_named(tmp_path):
    data = bench.load_limits()
    assert data["defaults"]["voltage"]["min"] == 23000
    bad = tmp_path / "limits.json"
    bad.write_text(json.dumps({"defaults": {"voltage": {"min": "low", "nosie_max": 1}}}))
    with pytest.raises(EdgeshadowError) as e:
        bench.load_limits(bad)
    assert "defaults.voltage.min: must be a number" in str(e.value)
    assert "defaults.voltage.nosie_max: unknown limit" in str(e.value)


def test_report_plot_and_json_from_rows(tmp_path):
    info = {"metrics": ["humidity", "voltage"], "thing": "t1", "board": "sim", "units": {"voltage": "V", "humidity": "%"},
            "sku": None}
    rows = [[1500 + i, [50.0 + 0.1 * (i % 3), 0.8 + 0.001 * (i % 2)], ["ok", "ok"],
             [50.0 + 0.1 * (i % 3), 24000.0 + 30 * (i % 2)]] for i in range(10)]
    report = bench.analyse(info, rows, limits_data=bench.load_limits())
    assert report["result"] == "PASS", report["metrics"]
    assert report["read_time_ms"]["mean"] == pytest.approx(1.5045)
    bench.write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["series"]["voltage"]["calibrated"][1] == 24030.0
    bench.plot(report, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_documents_exit_codes():
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "0  PASS" in r.stdout and "1  FAIL" in r.stdout and "3  could not test" in r.stdout
