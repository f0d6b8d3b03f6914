"""`edgeshadow bench`: the verdicts on their own, then on the virtual board (real MicroPython running
the firmware's drivers and calibration against simulated hardware) through one BoardLink."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.bench import check as bench
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"min": 90.0, "max": 110.0, "noise_max": 1.0, "stuck_stdev_max": 0, "max_failed": 0}


def series(values):
    return [v for v in values], ["ok"] * len(values), [v * 100 for v in values]


def test_nominal_series_passes_with_statistics():
    raw = [1.00, 1.003, 0.998, 1.001, 1.0]
    r = bench.judge("voltage", raw, ["ok"] * 5, [x * 100 for x in raw], LIMITS, unit="V")
    assert r["result"] == "PASS" and r["reasons"] == []
    assert r["calibrated"]["mean"] == pytest.approx(100.04)
    assert r["calibrated"]["min"] == pytest.approx(99.8) and r["calibrated"]["max"] == pytest.approx(100.3)
    assert r["raw"]["stdev"] == pytest.approx(0.0018166, rel=1e-3)
    assert r["failed"] == {}


def test_a_slow_drift_is_not_noise_but_jitter_on_it_is():
    # a room warming 0.3 C per reading: stdev 1.4 C, yet every reading is within 0.01 C of the trend
    drift = [20.0 + 0.3 * i + (0.01 if i % 2 else -0.01) for i in range(16)]
    r = bench.judge("t", drift, ["ok"] * 16, drift, LIMITS, unit="C")
    assert r["calibrated"]["stdev"] > 1.0 and r["calibrated"]["noise"] < 0.1
    # the same drift with +-2 C of jitter on it fails, and names the noise
    jitter = [x + (2.0 if i % 2 else -2.0) for i, x in enumerate(drift)]
    j = bench.judge("t", jitter, ["ok"] * 16, jitter, dict(LIMITS, min=0, max=100), unit="C")
    assert j["calibrated"]["noise"] == pytest.approx(3.3, abs=0.1)
    assert j["result"] == "FAIL" and j["reasons"] == ["noisy: noise 3.282 C above the limit 1 C"]


def test_each_failure_names_its_reason():
    stuck = bench.judge("t", [1.0] * 6, ["ok"] * 6, [100.0] * 6, LIMITS, unit="C")
    assert stuck["result"] == "FAIL" and stuck["reasons"][0].startswith("stuck: 6 raw readings")
    gone = bench.judge("t", [None] * 4, ["disconnected"] * 4, [None] * 4, LIMITS)
    assert gone["result"] == "FAIL" and gone["failed"] == {"disconnected": 4}
    assert gone["reasons"] == ["disconnected: 4 of 4 reads failed (disconnected x4)"]
    noisy = bench.judge("t", [0.9, 1.1, 0.95, 1.05], ["ok"] * 4, [90.0, 110.0, 95.0, 105.0], LIMITS, unit="V")
    assert noisy["result"] == "FAIL"
    assert noisy["reasons"] == ["noisy: noise 12.42 V above the limit 1 V"]
    low = bench.judge("t", [0.5, 0.502, 0.499], ["ok"] * 3, [50.0, 50.2, 49.9], LIMITS, unit="V")
    assert low["reasons"] == ["out of range: mean 50.03 V outside expected 90..110 V"]
    some = bench.judge("t", [1.0, None, 1.01], ["ok", "crc", "ok"], [100.0, None, 101.0], LIMITS)
    assert some["reasons"] == ["failed reads: 1 of 3 (crc x1)"]
    assert bench.judge("t", [1.0, None, 1.01], ["ok", "crc", "ok"], [100.0, None, 101.0],
                       dict(LIMITS, max_failed=1))["result"] == "PASS"


def test_limits_layer_defaults_sku_driver_board_and_rating():
    data = {"defaults": {"current": {"min": 0, "noise_max": 9}},
            "drivers": {"ac_rms": {"current": {"raw_noise_max": 0.01}}},
            "boards": {"sim": {"current": {"noise_max": 7}}},
            "skus": {"MV-200A": {"current": {"noise_max": 2, "min": 1}}}}
    lim = bench.limits_for("current", board="sim", sku={"name": "MV-200A", "ratings": {"current": 200}},
                           driver="ac_rms", data=data)
    assert lim == {"min": 1, "noise_max": 7, "raw_noise_max": 0.01, "max": 200}
    lim = bench.limits_for("current", board="other", sku={"name": "MV-200A"}, data=data)
    assert lim == {"min": 1, "noise_max": 2}
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
             [50.0 + 0.1 * (i % 3), 24000.0 + 20 * (i % 2)]] for i in range(10)]
    report = bench.analyse(info, rows, limits_data=bench.load_limits())
    assert report["result"] == "PASS", report["metrics"]
    assert report["read_time_ms"]["mean"] == pytest.approx(1.5045)
    bench.write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["series"]["voltage"]["calibrated"][1] == 24020.0
    bench.plot(report, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_documents_exit_codes():
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "0  PASS" in r.stdout and "1  FAIL" in r.stdout and "3  could not test" in r.stdout


# ---------------------------------------------------------------- on the virtual board

SIM_CONFIG = json.loads((ROOT / "host_tools" / "data" / "configs" / "grid-sensor-sim.json").read_text())


def start_board(workdir, scenario, thing="bench-001", time_scale=1.0):
    """A virtual board with the sim device config (transformer ratios as calibration) running
    `scenario`; time_scale > 1 brings a scenario's faults (from 30 s) forward."""
    import shutil
    from host_tools import FIRMWARE_DIR
    from host_tools.sim import scenarios
    from host_tools.sim.board import VirtualBoard
    flash = workdir / "flash"
    shutil.copytree(FIRMWARE_DIR, flash, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (flash / "config.json").write_text(json.dumps(dict(SIM_CONFIG, thing=thing)))
    scenarios.prepare(scenario, thing, 0, workdir / "sim", time_scale=time_scale)
    vb = VirtualBoard(workdir, thing=thing, scenario=None)
    vb.start()
    return vb


def wait_sim_time(started, seconds, time_scale):
    """Wait until the board's simulated clock passed `seconds`: it starts at boot (before
    VirtualBoard.start() returned at `started`) and runs time_scale times faster than ours."""
    import time
    end = started + seconds / time_scale
    while time.monotonic() < end:
        time.sleep(end - time.monotonic())


def run_cli(vb, tmp_path, samples):
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", vb.port, "--samples", str(samples),
                        "--json", str(tmp_path / "report.json"), "--plot", str(tmp_path / "report.png")],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    report = json.loads((tmp_path / "report.json").read_text()) if (tmp_path / "report.json").exists() else None
    return r, report


def assert_firmware_runs_again(vb, log_before):
    # the soft reset boots main.py: banner, then the supervisor's first log lines
    end = vb.wait_for_log("edgeshadow firmware v", start=log_before, timeout=30)
    vb.wait_for_log("net: no mqtt.endpoint", start=end, timeout=30)


def test_nominal_board_passes_and_firmware_runs_again(tmp_path):
    vb = start_board(tmp_path / "board", "nominal")
    try:
        boots, log_before = vb.boots, len(vb.log())
        r, report = run_cli(vb, tmp_path, samples=10)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "overall: PASS" in r.stdout
        assert report["result"] == "PASS" and report["restart"] == "ok"
        assert sorted(report["metrics"]) == ["current", "humidity", "temperature", "voltage"]
        v = report["metrics"]["voltage"]
        assert v["samples"] == 10 and v["calibrated"]["n"] == 10 and v["failed"] == {}
        assert 23000 < v["calibrated"]["mean"] < 25000 and 0.7 < v["raw"]["mean"] < 0.9  # ratio 30000
        assert len(report["series"]["humidity"]["raw"]) == 10 and report["read_time_ms"]["mean"] > 0
        assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
        assert_firmware_runs_again(vb, log_before)
        assert vb.boots == boots + 1
    finally:
        vb.stop()


@pytest.mark.parametrize("scenario,time_scale,samples,must_fail,reason", [
    ("stuck", 120.0, 6, {"temperature", "humidity"}, "stuck: "),
    ("disconnected", 120.0, 6, {"temperature", "humidity"}, "disconnected: 6 of 6 reads failed"),
    # ADC noise 15 times nominal and a noisy SHT3x: whichever metrics show it, noise is the reason
    ("noisy", 1.0, 15, set(), "noisy: "),
])
def test_faulty_sensor_fails_with_reason_and_exit_1(tmp_path, scenario, time_scale, samples, must_fail, reason):
    vb = start_board(tmp_path / "board", scenario, time_scale=time_scale)
    started = __import__("time").monotonic()
    try:
        if must_fail:
            wait_sim_time(started, 31, time_scale)  # the scenario's faults start at 30 s
        log_before = len(vb.log())
        r, report = run_cli(vb, tmp_path, samples=samples)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "overall: FAIL" in r.stdout and reason in r.stdout
        failed = {m for m, x in report["metrics"].items() if x["result"] == "FAIL"}
        assert failed and must_fail <= failed, report["metrics"]
        for m in must_fail:
            assert any(why.startswith(reason) for why in report["metrics"][m]["reasons"]), report["metrics"][m]
        for m, x in report["metrics"].items():
            if m in must_fail or not must_fail:  # the right reason, and only that one
                assert all(why.startswith(reason) for why in x["reasons"]), (m, x["reasons"])
            else:  # the fault is put on its own sensor only (a sped-up clock makes the line's
                # slow swings look like noise on the others, so only the fault's reason counts)
                assert not any(why.startswith(reason) for why in x["reasons"]), (m, x["reasons"])
        assert (tmp_path / "report.png").exists()
        assert_firmware_runs_again(vb, log_before)
    finally:
        vb.stop()


def test_no_board_is_could_not_test_exit_3(tmp_path):
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", str(tmp_path / "ttyNONE")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "could not test" in r.stderr and "ttyNONE" in r.stderr


def test_ctrl_c_during_the_bench_restarts_the_firmware(tmp_path):
    from host_tools.device.link import BoardLink

    class InterruptedLink(BoardLink):
        reads = 0

        def exec(self, code, timeout=10):
            if code.startswith("_bench("):
                self.reads += 1
                if self.reads == 2:
                    raise KeyboardInterrupt  # the person at the bench pressed Ctrl-C
            return super().exec(code, timeout)

    vb = start_board(tmp_path / "board", "nominal")
    try:
        log_before = len(vb.log())
        with InterruptedLink(vb.port) as link:
            with pytest.raises(KeyboardInterrupt):
                bench.run_bench(link, samples=10)
            assert link.reads == 2
        assert_firmware_runs_again(vb, log_before)
    finally:
        vb.stop()
