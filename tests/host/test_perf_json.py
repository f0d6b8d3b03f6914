"""`make perf` writes its figures to perf.json as well (issue 13): name, value, unit, runtime."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "perf"))
from run import parse_figure  # noqa: E402


def test_figure_lines_are_parsed_with_their_unit_and_runtime():
    assert parse_figure("pipeline time (nominal, micropython unix): 69.4 us/sample\n") == {
        "name": "pipeline time (nominal, micropython unix)", "value": 69.4, "unit": "us/sample",
        "runtime": "micropython unix"}
    assert parse_figure("qos1_publishes_per_s: 812 /s") == {
        "name": "qos1_publishes_per_s", "value": 812, "unit": "/s", "runtime": "cpython"}
    assert parse_figure("heap low (esp32like): 61234 bytes")["runtime"] == "micropython esp32like"
    assert parse_figure("target: <= 100 us/sample and <= 2048 bytes/sample (issue 2)") is None
    assert parse_figure("== bench_x") is None


def test_perf_run_writes_perf_json(tmp_path):
    out = tmp_path / "perf.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "perf" / "run.py"), "bench_spool"],
                          cwd=ROOT, env={"PERF_JSON": str(out), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["benches"]["bench_spool"]["exit"] == 0
    figs = {f["name"]: f for f in doc["figures"]}
    saves = figs["spool meta saves per 1000 acks (meta_every 20, micropython unix)"]
    assert saves["unit"] == "saves" and saves["runtime"] == "micropython unix" and saves["bench"] == "bench_spool"
    assert saves["value"] < figs["spool meta saves per 1000 acks (meta_every 1, micropython unix)"]["value"]
    for line in proc.stdout.splitlines():   # every figure printed is in the file
        f = parse_figure(line)
        if f is not None:
            assert figs[f["name"]]["value"] == f["value"]
