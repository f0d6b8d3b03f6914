"""`edgeshadow bench`: the verdicts on their own, then on the virtual board (real MicroPython running
the firmware's drivers and calibration against simulated hardware) through one BoardLink."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.bench import check as bench
from host_tools.bench import plot
from host_tools.errors import EdgeshadowError
from host_tools.output import write_json_file

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
    write_json_file(tmp_path / "r.json", report)
    assert json.loads((tmp_path / "r.json").read_text())["series"]["voltage"]["calibrated"][1] == 24020.0
    plot.plot(report, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_documents_exit_codes():
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "0  PASS" in r.stdout and "1  FAIL" in r.stdout and "3  could not test" in r.stdout


# ---------------------------------------------------------------- on the virtual board

SIM_CONFIG = json.loads((ROOT / "host_tools" / "data" / "configs" / "grid-sensor-sim.json").read_text())


def start_board(workdir, scenario, thing="bench-001", time_scale=1.0, seed=0):
    """A virtual board with the sim device config (transformer ratios as calibration) running
    `scenario`; time_scale > 1 brings a scenario's faults (from 30 s) forward."""
    import shutil
    from host_tools import FIRMWARE_DIR
    from host_tools.sim import scenarios
    from host_tools.sim.board import VirtualBoard
    flash = workdir / "flash"
    shutil.copytree(FIRMWARE_DIR, flash, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (flash / "config.json").write_text(json.dumps(dict(SIM_CONFIG, thing=thing)))
    scenarios.prepare(scenario, thing, seed, workdir / "sim", time_scale=time_scale)
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


def run_cli(vb, tmp_path, samples, json_to="file", plot=True):
    """The bench command; its report from --json FILE, or from stdout with --json - (then stdout
    holds the JSON document and nothing else). plot: --plot report.png too (matplotlib's import
    and drawing cost 3 s of CPU: the cases that add nothing to the plot leave it out)."""
    out = ["-"] if json_to == "-" else [str(tmp_path / "report.json")]
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", vb.port, "--samples", str(samples),
                        "--json", *out] + (["--plot", str(tmp_path / "report.png")] if plot else []),
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    if json_to == "-":
        return r, json.loads(r.stdout) if r.stdout.strip() else None
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
        r, report = run_cli(vb, tmp_path, samples=10, json_to="-")
        assert r.returncode == 0, r.stdout + r.stderr
        assert report["result"] == "PASS" and report["restart"] == "ok"
        # progress on stderr, as lines off a terminal: the reads counted up to the total
        assert "bench reads (10 reads) ..." in r.stderr and "bench reads: 10/10" in r.stderr
        assert "overall: PASS" not in r.stdout  # with --json -, stdout is the document alone
        assert sorted(report["metrics"]) == ["current", "humidity", "temperature", "voltage"]
        v = report["metrics"]["voltage"]
        assert v["samples"] == 10 and v["calibrated"]["n"] == 10 and v["failed"] == {}
        assert 23000 < v["calibrated"]["mean"] < 25000 and 0.7 < v["raw"]["mean"] < 0.9  # ratio 30000
        assert len(report["series"]["humidity"]["raw"]) == 10 and report["read_time_ms"]["mean"] > 0
        assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
        assert_firmware_runs_again(vb, log_before)
        assert vb.boots == boots + 2  # into the raw REPL (a clean heap for the bench), then the firmware
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
        # the plot of a failing report is drawn once: where every read failed (nothing to draw
        # but the failures)
        r, report = run_cli(vb, tmp_path, samples=samples, plot=scenario == "disconnected")
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
        assert (tmp_path / "report.png").exists() == (scenario == "disconnected")
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
            if "_bs.call('read'" in code:
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


def test_the_bench_prints_its_verdicts_on_stdout_without_json(tmp_path):
    vb = start_board(tmp_path / "board", "nominal")
    try:
        r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", vb.port, "--samples", "4"],
                           cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1] == "overall: PASS" and "bench:" not in r.stdout
        assert "bench: stopping the firmware's main loop" in r.stderr
    finally:
        vb.stop()


# ---------------------------------------------------------------- bad output paths: refused up front

@pytest.mark.parametrize("args,message", [
    # --json FILE is checked while the arguments are parsed: argparse's usage line, then this one
    (["--json", "/tmp"], "argument --json: /tmp: is a folder; give a file name"),
    (["--json", "/nonexistent-folder/r.json"], "argument --json: /nonexistent-folder/r.json: folder /nonexistent-folder does not exist"),
    (["--plot", "x.txt"], "--plot x.txt: cannot draw a .txt file; use one of "),
    (["--plot", "/tmp"], "--plot /tmp: is a folder; give a file name"),
    (["--plot", "/nonexistent-folder/p.png"], "--plot /nonexistent-folder/p.png: folder /nonexistent-folder does not exist"),
    (["--samples", "0"], "--samples 0: must be at least 1"),
])
def test_bad_output_paths_are_refused_before_the_board_is_touched(tmp_path, args, message):
    # the port does not exist: a refusal up front is exit 2 with the path named; reaching for the
    # board would be exit 3 (could not test)
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", str(tmp_path / "ttyNONE"), *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 or lines[0].startswith("usage: "), r.stderr
    assert r.stdout == "" and not (ROOT / "-").exists()


def test_the_plot_types_are_the_ones_matplotlib_writes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    assert set(plot.PLOT_TYPES) == set(FigureCanvasAgg.get_supported_filetypes())


def test_json_dash_is_stdout_not_a_file_named_dash(tmp_path):
    r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", str(tmp_path / "ttyNONE"), "--json", "-"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and not (tmp_path / "-").exists()


# ---------------------------------------------------------------- the board side is a firmware module

def test_the_board_side_ships_with_the_firmware_and_app_never_imports_it():
    import ast
    from host_tools import FIRMWARE_DIR
    from host_tools.device import deploy
    files, _dirs = deploy.local_files(FIRMWARE_DIR, mpy_arch="xtensawin")  # what `deploy --mpy` sends
    assert files["/benchside.mpy"].startswith(b"M") and "/benchside.py" not in files
    for path in FIRMWARE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert "benchside" not in mods, f"{path} imports benchside: it would cost RAM in normal running"
    for src in ("check.py", "calibrate.py", "session.py"):
        text = (ROOT / "host_tools" / "bench" / src).read_text()
        assert "_bwdt" not in text and "WDT(" not in text, f"board code left in host_tools/bench/{src}"


def test_a_firmware_without_the_bench_module_is_named(tmp_path):
    vb = start_board(tmp_path / "board", "nominal")
    try:
        (vb.flash_dir / "benchside.py").unlink()
        r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", vb.port, "--samples", "2"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 3, r.stderr
        assert "the board's firmware has no bench module (benchside): deploy this firmware with " \
               "`edgeshadow deploy`" in r.stderr
    finally:
        vb.stop()


# ---------------------------------------------------------------- the default scenario is bench-quiet

def _simhw():
    path = str(ROOT / "host_tools" / "sim" / "mpy")
    if path not in sys.path:
        sys.path.append(path)
    import simhw
    return simhw


def test_smartgrid_timeline_is_the_reference_generator_with_the_nominal_draws_kept():
    from host_tools.sim import reference, scenarios
    d = scenarios.build("smartgrid", "bench-001", 8)
    tl = d["timeline"]
    recs = list(reference.generate(["bench-001"], len(tl["signals"]["voltage"]), interval_s=10, seed=d["seed"],
                                   anomaly_probability=0.1))
    for m in reference.METRICS:
        assert tl["signals"][m] == [r["raw"][m] for r in recs]
    # seed 8: sample 0 comes from the anomaly generator on every metric; its nominal draw is kept
    assert {m: tl["quiet"][m][0][0] for m in reference.METRICS} == {m: 0 for m in reference.METRICS}
    for m, pairs in tl["quiet"].items():
        for i, v in pairs:
            lo, hi = reference.NOMINAL[m]
            assert lo <= v <= hi and tl["signals"][m][i] != v


def test_bench_quiet_replaces_anomalies_and_keeps_faults_and_noise():
    from host_tools.sim import scenarios
    simhw = _simhw()
    scn = scenarios.build("smartgrid", "bench-001", 8)
    nominal0 = dict((m, pairs[0][1]) for m, pairs in scn["timeline"]["quiet"].items())
    scn["noise"] = {"temperature": 0.05}
    scn["faults"] = [{"kind": "stuck", "signal": "humidity", "from_s": 0}]
    simhw.init(scenario=scn)
    simhw.set_clock(lambda: 0)
    simhw._ms0 = simhw.ticks_ms()  # the clock at sample 0
    assert simhw.value("voltage", noisy=False) == scn["timeline"]["signals"]["voltage"][0] != nominal0["voltage"]
    assert simhw.bench_quiet(True) == sum(len(p) for p in scn["timeline"]["quiet"].values())
    t0 = simhw.elapsed()
    assert t0 < 1.0  # still within sample 0's interval (interpolation starts from it)
    v = simhw.value("voltage", noisy=False)
    nxt = scn["timeline"]["signals"]["voltage"][1]
    assert abs(v - (nominal0["voltage"] + (nxt - nominal0["voltage"]) * simhw.elapsed() / 10)) < 200
    assert 23000 <= v <= 25000
    temps = {simhw.value("temperature") for _ in range(5)}
    assert len(temps) > 1  # sensor noise stays
    # the stuck fault stays: the sensor holds its value from the fault's start, without noise
    assert {simhw.value("humidity") for _ in range(5)} == {nominal0["humidity"]}
    simhw.bench_quiet(False)
    assert simhw.value("voltage", noisy=False) != v
    simhw.set_clock(None)


def _early_anomaly_seeds(thing, count, within=1):
    """Seeds whose smartgrid timeline for `thing` has anomalies in its first samples (the bench
    window on a board that just booted): without the quiet mode, these fail the bench."""
    from host_tools.sim import scenarios
    seeds = []
    for seed in range(200):
        quiet = scenarios.build("smartgrid", thing, seed)["timeline"]["quiet"]
        hit = [m for m, pairs in quiet.items() if any(i <= within for i, _ in pairs)]
        if {"voltage", "temperature"} & set(hit) or len(hit) == 4:
            seeds.append(seed)
        if len(seeds) == count:
            return seeds
    raise AssertionError("no such seeds")


def test_the_default_scenario_passes_the_bench_every_run_over_a_seed_sweep(tmp_path):
    seeds = [0] + _early_anomaly_seeds("bench-001", 3)
    verdicts = {}
    for seed in seeds:
        vb = start_board(tmp_path / f"board-{seed}", "smartgrid", seed=seed)
        try:
            r = subprocess.run([sys.executable, "-m", "host_tools", "bench", "--port", vb.port, "--samples", "10",
                                "--json", "-", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=180)
            verdicts[seed] = (r.returncode, {m: x["reasons"] for m, x in json.loads(r.stdout)["metrics"].items()
                                             if x["reasons"]} if r.stdout.strip() else r.stderr)
        finally:
            vb.stop()
    assert all(code == 0 for code, _ in verdicts.values()), verdicts


def test_a_host_pause_mid_burst_keeps_the_virtual_adc_on_phase():
    """The virtual ADC is hardware-timed: a busy host that pauses the board 45 ms in the middle of
    a burst must not put the rest of it on another phase of the sine (it made the nominal bench
    FAIL now and then as noisy: one voltage read 1 to 3 % off)."""
    import math
    simhw = _simhw()
    simhw.init(scenario={"name": "t", "seed": 1, "time_scale": 1.0, "loop": True,
                         "timeline": {"interval_s": 10, "signals": {"voltage": [24000.0]}},
                         "hardware": {"mains_hz": 50, "adc": {"34": {"signal": "voltage", "ratio": 30000.0,
                                                                     "bias_v": 1.55, "noise_v": 0.0,
                                                                     "sample_rate_hz": 2000}}},
                         "noise": {}, "faults": [], "wifi_outages": []})
    now = [10 ** 9]
    simhw.set_clock(lambda: now[0])
    try:
        vs = []
        for i in range(80):  # two mains cycles at 2 kHz
            now[0] += 45_000_000 if i == 37 else 500_000
            vs.append(simhw._pin_volts(34) - 1.55)
    finally:
        simhw.set_clock(None)
    rms = math.sqrt(sum(v * v for v in vs) / len(vs))
    assert abs(rms - 0.8) < 1e-6  # 24 kV through the 30000:1 transformer


def test_the_board_side_fits_beside_the_firmware_in_the_boards_heap(tmp_path):
    """On the ESP32-like runtime in a WROOM's 112,000 B, compiled as deploy sends it, after the
    firmware ran and was stopped: the import and a session of the four sim metrics (their drivers
    and calibration chains) cost what the module's header says, and leave room for the reads."""
    from host_tools.device.link import BoardLink
    from host_tools.sim import runtimes
    from host_tools.sim.board import VirtualBoard
    if not runtimes.available("esp32like"):
        pytest.skip("the ESP32-like runtime is not built")
    # romfs=0: the stock image's layout, where imported code is loaded into the heap (the worst case;
    # from a ROMFS partition the module's code runs in place)
    with VirtualBoard(tmp_path / "vb", thing="ram-001", scenario="nominal", runtime="esp32like", romfs=0) as vb:
        (vb.flash_dir / "config.json").write_text(json.dumps(dict(SIM_CONFIG, thing="ram-001")))
        assert (vb.flash_dir / "benchside.mpy").exists() and not (vb.flash_dir / "benchside.py").exists()
        with BoardLink(vb.port) as link:
            link.soft_reset()
            vb.wait_for_log("net: no mqtt.endpoint", timeout=30)  # the firmware runs
            link.interrupt()
            out = link.exec("import gc\ngc.collect()\n_f0 = gc.mem_free()\nimport benchside as _bs\n"
                            "gc.collect()\n_f1 = gc.mem_free()\n_bs.start()\ngc.collect()\n_f2 = gc.mem_free()\n"
                            "_bs.call('read', 5)\ngc.collect()\n"
                            "print('RAM', _f0 - _f1, _f1 - _f2, gc.mem_free())", timeout=30)
            link.soft_reset()
    imported, session, free = map(int, out.strip().splitlines()[-1].split()[1:])
    # (the firmware's leftovers may be collected meanwhile: the session's figure is an upper bound)
    assert 0 < imported < 6000 and session < 24000, (imported, session)
    assert free > 16000, free  # what the reads and the REPL still have
