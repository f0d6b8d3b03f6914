"""`edgeshadow calibrate`: stage replacement and the config it writes, then the whole wizard on the
virtual board (references applied by the simulation) over one BoardLink."""
import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.bench import calibrate

from host_tools.bench import fit
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bench import SIM_CONFIG, start_board  # noqa: E402  (same board set-up as the bench tests)


def test_fit_replaces_transfer_stages_and_keeps_filters():
    stage = {"type": "linear", "gain": 2.0, "offset": 1.0}
    assert calibrate.new_calibration([], stage) == [stage]
    old = [{"type": "filter_out", "value": 0}, {"type": "linear", "gain": 1.0},
           {"type": "offset", "value": 3}, {"type": "round", "decimals": 1}]
    assert calibrate.new_calibration(old, stage) == [{"type": "filter_out", "value": 0}, stage,
                                                     {"type": "round", "decimals": 1}]
    assert calibrate.new_calibration([{"type": "ema", "alpha": 0.5}], stage) == [stage, {"type": "ema", "alpha": 0.5}]


def test_updated_config_holds_stage_and_provenance_and_stays_valid():
    f = fit.fit_linear([(0.4, 12000.0), (0.6, 18010.0), (0.8, 23990.0)])
    now = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)
    text, cfg = calibrate.updated_config(json.dumps(SIM_CONFIG), "voltage", f, [12000, 18010, 23990],
                                         [0.4, 0.6, 0.8], 10, [0.001, 0.002, 0.001], now=now)
    assert json.loads(text) == cfg
    m = cfg["metrics"]["voltage"]
    assert m["calibration"][0] == {"type": "linear", "gain": f.gain, "offset": f.offset}
    assert m["calibration"][1] == {"type": "round", "decimals": 1}  # the filter stays
    p = m["provenance"]
    assert p["date"] == "2026-11-27T12:00:00+00:00" and p["references"] == [12000.0, 18010.0, 23990.0]
    assert p["raw"] == [0.4, 0.6, 0.8] and p["samples"] == 10 and p["method"] == "least squares linear"
    assert p["residual_rms"] == pytest.approx(f.rms, rel=1e-5) and len(p["residuals"]) == 3
    assert cfg["metrics"]["current"] == SIM_CONFIG["metrics"]["current"]  # nothing else changes


def test_updated_config_names_what_is_wrong():
    f = fit.fit_linear([(0, 0), (1, 1)])
    with pytest.raises(EdgeshadowError, match="no metric 'pressure'"):
        calibrate.updated_config(json.dumps(SIM_CONFIG), "pressure", f, [0, 1], [0, 1], 1, [0, 0])
    with pytest.raises(EdgeshadowError, match="not valid JSON"):
        calibrate.updated_config("{", "voltage", f, [0, 1], [0, 1], 1, [0, 0])
    bad = dict(SIM_CONFIG, interval_s=0)
    with pytest.raises(EdgeshadowError, match="interval_s: must be a number >= 1"):
        calibrate.updated_config(json.dumps(bad), "voltage", f, [0, 1], [0, 1], 1, [0, 0])


def test_too_few_references_is_refused_before_touching_the_board():
    class NoBoard:
        def __getattr__(self, name):
            raise AssertionError(f"the board was used ({name})")
    with pytest.raises(EdgeshadowError, match="at least 2 reference values"):
        calibrate.run_calibration(NoBoard(), "voltage", references=[24000.0])
    with pytest.raises(EdgeshadowError, match="at least 3 reference values for a degree-2 fit"):
        calibrate.run_calibration(NoBoard(), "voltage", references=[1.0, 2.0], degree=2)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "host_tools", "calibrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.fixture
def board(tmp_path):
    vb = start_board(tmp_path / "board", "nominal", thing="cal-001")
    try:
        yield vb
    finally:
        vb.stop()


@pytest.mark.parametrize("metric,refs", [("voltage", [12000.0, 18000.0, 24000.0]), ("current", [100.0, 300.0, 500.0])])
def test_calibrate_on_the_virtual_board_recovers_the_transformer_ratio(board, metric, refs):
    from host_tools.sim import scenarios
    ratio = scenarios.ratios()[metric]
    cfg_path = board.flash_dir / "config.json"
    before = json.loads(cfg_path.read_text())
    log_before = len(board.log())
    r = _cli("--port", board.port, "--metric", metric, "--ref", *map(str, refs), "--samples", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "residual rms" in r.stdout and "written to the board's /config.json" in r.stdout
    after = json.loads(cfg_path.read_text())  # the board's flash folder is its filesystem
    stage = after["metrics"][metric]["calibration"][0]
    assert stage["type"] == "linear"
    assert abs(stage["gain"] - ratio) / ratio < 0.005, (stage, ratio)
    assert after["metrics"][metric]["calibration"][1:] == before["metrics"][metric]["calibration"][1:]
    p = after["metrics"][metric]["provenance"]
    assert p["references"] == refs and len(p["raw"]) == 3 and p["samples"] == 5
    assert datetime.datetime.fromisoformat(p["date"]).tzinfo is not None
    assert p["residual_max"] < 0.01 * refs[-1]
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert not (board.flash_dir / "config.json.tmp").exists()
    # the firmware restarted on the new config, and its shadow report carries the provenance
    board.wait_for_log("edgeshadow firmware v", start=log_before, timeout=30)
    assert reported_on_board(board)["provenance"] == {metric: p}


# The firmware's own App on the board builds the reported state from /config.json.
REPORTED = """
import json
import app
from edge.config import load
_a = app.App(load(json.load(open('/config.json'))), json.load(open('/board.json')))
_a.sample()
print(json.dumps(_a.reported()))
"""


def reported_on_board(board):
    from host_tools.device.link import BoardLink
    with BoardLink(board.port) as link:
        link.interrupt()
        out = link.exec(REPORTED, timeout=20)
        link.soft_reset()
    return json.loads(out.strip().splitlines()[-1])


def test_unknown_metric_changes_nothing_and_restarts_the_firmware(board):
    cfg_path = board.flash_dir / "config.json"
    before = cfg_path.read_bytes()
    log_before = len(board.log())
    r = _cli("--port", board.port, "--metric", "pressure", "--ref", "1", "2")
    assert r.returncode == 1 and "no metric 'pressure' in /config.json" in r.stderr, r.stderr
    assert "voltage" in r.stderr  # names the metrics it has
    assert cfg_path.read_bytes() == before
    board.wait_for_log("edgeshadow firmware v", start=log_before, timeout=30)


def test_interactive_wizard_asks_for_each_reference_until_empty(board):
    from host_tools.device.link import BoardLink
    answers = iter(["12000", "", "twelve", "18000", "24000", ""])  # one Enter too early, and a typo
    prompts, said = [], []

    def ask(prompt):
        prompts.append(prompt)
        return next(answers)

    with BoardLink(board.port) as link:
        r = calibrate.run_calibration(link, "voltage", samples=3, ask=ask, progress=said.append)
    assert r["references"] == [12000.0, 18000.0, 24000.0] and r["written"]
    assert len(prompts) == 6 and prompts[0].startswith("reference 1: apply a known voltage, type its value in V")
    assert "need at least 2 points, have 1" in said and "not a number: 'twelve'" in said
    assert abs(r["stage"]["gain"] - 30000.0) / 30000.0 < 0.005
    assert json.loads((board.flash_dir / "config.json").read_text())["metrics"]["voltage"]["provenance"]["references"] \
        == [12000.0, 18000.0, 24000.0]
