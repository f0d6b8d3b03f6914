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
    with pytest.raises(EdgeshadowError, match="a linear fit needs at least 2 distinct reference values, got 1"):
        calibrate.run_calibration(NoBoard(), "voltage", references=[24000.0])
    with pytest.raises(EdgeshadowError, match="a degree-2 fit needs at least 3 distinct reference values, got 2"):
        calibrate.run_calibration(NoBoard(), "voltage", references=[1.0, 2.0], degree=2)
    with pytest.raises(EdgeshadowError, match="--ref 100 100: a linear fit needs at least 2 distinct") as e:
        calibrate.run_calibration(NoBoard(), "current", references=[100.0, 100.0])
    assert e.value.exit_code == 2
    with pytest.raises(EdgeshadowError, match="a degree-2 fit needs at least 3 distinct reference values, got 2"):
        calibrate.run_calibration(NoBoard(), "voltage", references=[1.0, 2.0, 2.0], degree=2)


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
    r = _cli("--port", board.port, "--metric", metric, "--ref", *map(str, refs), "--samples", "5", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    # the fit and the before/after table come first, then what was written; progress on stderr
    out = r.stdout.splitlines()
    assert out[0] == f"{metric}: linear fit over 3 references ({'V' if metric == 'voltage' else 'A'})"
    assert out[1].startswith("  gain ") and "R\u00b2 " in out[1] and "max residual" in out[1]
    assert out[2].split() == ["reference", "raw", "before", "error", "after", "error"] and len(out) == 7
    assert out[6].startswith(f"written to the board's /config.json: metrics.{metric}.calibration = linear(gain ")
    assert "writing /config.json" in r.stderr and "writing" not in r.stdout
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
    r = _cli("--port", board.port, "--metric", "pressure", "--ref", "1", "2", "--yes")
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
        r = calibrate.run_calibration(link, "voltage", samples=3, ask=ask, say=said.append)
    assert [p["reference"] for p in r["points"]] == [12000.0, 18000.0, 24000.0] and r["written"]
    assert len(prompts) == 6 and prompts[0].startswith("reference 1: apply a known voltage, type its value in V")
    assert "need at least 2 distinct points, have 1" in said and "not a number: 'twelve'" in said
    assert abs(r["fit"]["gain"] - 30000.0) / 30000.0 < 0.005
    assert json.loads((board.flash_dir / "config.json").read_text())["metrics"]["voltage"]["provenance"]["references"] \
        == [12000.0, 18000.0, 24000.0]


# ---------------------------------------------------------------- a calibration that checks itself

def test_ref_100_100_and_unconfirmed_runs_are_refused_before_the_board(tmp_path):
    port = str(tmp_path / "ttyNONE")  # reaching for the board would be exit 3, not 2
    for args, message in [
        (["--ref", "100", "100", "--yes"], "--ref 100 100: a linear fit needs at least 2 distinct reference values, got 1"),
        (["--ref", "1", "2", "3", "--degree", "3", "--yes"], "a degree-3 fit needs at least 4 distinct reference values, got 3"),
        (["--ref", "100", "300"], "calibrate writes the board's config only when confirmed: run it in a terminal, "
                                  "or pass --yes (or --dry-run to only see the fit)"),
        (["--yes"], "no --ref values and no terminal to ask for them"),
        (["--ref", "100", "300", "--samples", "0", "--yes"], "--samples 0: must be at least 1"),
        (["--ref", "100", "nan", "--yes"], "--ref 100 nan: nan is not a finite number"),
        (["--ref", "1", "2", "--yes", "--json", "/tmp"], "--json: /tmp: is a folder; give a file name"),
    ]:
        r = _cli("--port", port, "--metric", "current", *args)
        assert r.returncode == 2, (args, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        assert message in last, (args, r.stderr)
        if "--json" in args:  # checked while parsing: argparse's usage, then its one error line
            assert last == f"edgeshadow calibrate: error: argument {message}"
        else:
            assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert r.stdout == "", (args, r.stderr)


def test_no_board_is_could_not_test_exit_3_as_the_help_says(tmp_path):
    r = _cli("--port", str(tmp_path / "ttyNONE"), "--metric", "current", "--ref", "1", "2", "--yes")
    assert r.returncode == 3 and "ttyNONE" in r.stderr, r.stderr
    h = _cli("--help")
    assert "3  could not test" in h.stdout and "2  usage error" in h.stdout and "--yes" in h.stdout


def _pts(refs, raws):
    return fit.fit_polynomial(list(zip(raws, refs)), 1)


def test_degenerate_fits_are_named():
    # the reading did not follow the references: a stuck or disconnected sensor, a reference not applied
    f = fit.Fit("linear", [100.0, 1e-12], residuals=[0.0, 0.0])
    assert calibrate.problems(f, [100.0, 300.0], [0.5, 0.5 + 1e-9], 1)[0].startswith(
        "zero gain: the raw reading hardly changed between references (0.5 .. 0.5)")
    # one bad reading among three: the raw value fell where the reference rose
    f = _pts([100.0, 300.0, 500.0], [0.1, 0.5, 0.3])
    assert calibrate.problems(f, [100.0, 300.0, 500.0], [0.1, 0.5, 0.3], 1) == [
        "not monotonic: the raw reading should rise with the reference, but reference 300 read 0.5 and 500 "
        "read 0.3 (a bad reading? repeat that point)"]
    # a sensor that falls with its reference (an NTC) is monotonic too
    f = _pts([10.0, 20.0, 30.0], [3.0, 2.0, 1.1])
    assert calibrate.problems(f, [10.0, 20.0, 30.0], [3.0, 2.0, 1.1], 1) == []
    # a parabola that turns inside the calibrated range
    refs, raws = [0.0, 10.0, 12.0, 10.5], [0.0, 1.0, 2.0, 3.0]
    f = fit.fit_polynomial(list(zip(raws, refs)), 2)
    assert calibrate.problems(f, refs, raws, 2)[0].startswith("not monotonic: the degree-2 fit turns")


def test_fit_is_shown_with_sensible_digits():
    info = {"board": "sim", "sku": None, "drivers": {"current": "ac_rms"}, "units": {"current": "A"},
            "calibration": {"current": [{"type": "linear", "gain": 1000.0}, {"type": "round", "decimals": 2}]}}
    refs, raws = [100.0, 300.0, 500.0], [0.1001234, 0.3002, 0.4998765]
    r = calibrate.evaluate("current", info, refs, raws, [0.0001] * 3, 1, 5, json.dumps(SIM_CONFIG),
                           limits_data={"defaults": {"current": {"noise_max": 1.0}}})
    lines = calibrate.fit_lines(r)
    assert lines[0] == "current: linear fit over 3 references (A)"
    assert lines[1] == (f"  gain {r['fit']['gain']:.6g}, offset {r['fit']['offset']:.3f} A; "
                        f"R\u00b2 {r['fit']['r2']:.6f}; max residual {r['fit']['residual_max']:.3f} A (tolerance 1.000 A)")
    assert lines[3].split() == ["100.000", "0.100123", "100.120", "+0.120", f"{r['points'][0]['after']:.3f}",
                                f"{r['points'][0]['after'] - 100:+.3f}"]
    assert r["points"][0]["before"] == 100.12  # the board's chain as it was: gain 1000, then round to 2
    assert r["within_tolerance"] and r["problems"] == [] and 0.99999 < r["fit"]["r2"] <= 1.0
    two = calibrate.evaluate("current", info, refs[:2], raws[:2], [0.0] * 2, 1, 5, json.dumps(SIM_CONFIG))
    assert calibrate.fit_lines(two)[-1].startswith("  note: 2 references determine this fit exactly")


class _OffSource:
    """The bench's reference source misbehaving at one reference: it applies `actual` when the
    person believes `believed` is applied (the interactive run that wrote a 47 A residual)."""

    def __init__(self, monkeypatch, believed, actual):
        real = calibrate.BenchBoard.hold

        def hold(board, signal, value):
            return real(board, signal, actual if value == believed else value)
        monkeypatch.setattr(calibrate.BenchBoard, "hold", hold)


def test_a_residual_beyond_the_bench_tolerance_is_refused_after_showing_it(board, monkeypatch):
    from host_tools.device.link import BoardLink
    _OffSource(monkeypatch, 300.0, 347.0)
    cfg_path = board.flash_dir / "config.json"
    before = cfg_path.read_bytes()
    shown = []
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError) as e:
            calibrate.run_calibration(link, "current", references=[100.0, 300.0, 500.0], samples=3,
                                      show=shown.append, confirm=lambda r: True)
    tolerance = json.loads((ROOT / "host_tools" / "data" / "bench_limits.json").read_text())[
        "boards"]["sim"]["current"]["noise_max"]   # the sim board's bench limit is the tolerance
    assert e.value.exit_code == 1
    assert str(e.value).startswith("not written: the largest residual, ") and \
        f"exceeds the bench tolerance of {tolerance:g} A (host_tools/data/bench_limits.json)" in str(e.value) and \
        "pass --force to write it anyway" in str(e.value)
    (r,) = shown
    assert r["fit"]["residual_max"] > 10 and not r["within_tolerance"] and r["tolerance"] == tolerance
    assert cfg_path.read_bytes() == before
    # forced: written, with the warning kept
    with BoardLink(board.port) as link:
        r = calibrate.run_calibration(link, "current", references=[100.0, 300.0, 500.0], samples=3, force=True)
    assert r["written"] and r["warnings"][0].startswith("the largest residual")
    assert json.loads(cfg_path.read_text())["metrics"]["current"]["provenance"]["residual_max"] > 10


def test_a_bad_reading_that_breaks_monotony_is_refused(board, monkeypatch):
    from host_tools.device.link import BoardLink
    _OffSource(monkeypatch, 300.0, 600.0)  # 300 A believed, 600 A applied: above the 500 A point
    before = (board.flash_dir / "config.json").read_bytes()
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match="not written: not monotonic: the raw reading should rise"):
            calibrate.run_calibration(link, "current", references=[100.0, 300.0, 500.0], samples=3, force=True)
    assert (board.flash_dir / "config.json").read_bytes() == before


def test_shown_before_asking_and_a_declined_calibration_writes_nothing(board):
    from host_tools.device.link import BoardLink
    events = []
    before = (board.flash_dir / "config.json").read_bytes()
    log_before = len(board.log())
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match="not written: the calibration was not confirmed") as e:
            calibrate.run_calibration(link, "voltage", references=[12000.0, 24000.0], samples=3,
                                      show=lambda r: events.append(("show", r["fit"]["gain"])),
                                      confirm=lambda r: events.append(("confirm", r["written"])) and False)
    assert e.value.exit_code == 1
    assert [k for k, _ in events] == ["show", "confirm"] and events[1][1] is False
    assert (board.flash_dir / "config.json").read_bytes() == before
    board.wait_for_log("edgeshadow firmware v", start=log_before, timeout=30)  # restarted all the same


def test_dry_run_json_is_one_document_on_stdout(board):
    before = (board.flash_dir / "config.json").read_bytes()
    r = _cli("--port", board.port, "--metric", "temperature", "--ref", "20", "40", "--samples", "3",
             "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["written"] is False and doc["metric"] == "temperature" and doc["unit"] == "C"
    assert [p["reference"] for p in doc["points"]] == [20.0, 40.0] and doc["fit"]["kind"] == "linear"
    assert doc["calibration"][0]["type"] == "linear" and "_config_text" not in doc
    assert "temperature: linear fit over 2 references (C)" in r.stderr  # the table, off stdout
    assert (board.flash_dir / "config.json").read_bytes() == before


def test_a_reading_that_never_moves_is_zero_gain_not_a_fit():
    info = {"board": "sim", "sku": None, "drivers": {}, "units": {"voltage": "V"}, "calibration": {"voltage": []}}
    with pytest.raises(EdgeshadowError, match=r"not written: zero gain: the raw reading hardly changed between "
                                              r"references \(0.8 .. 0.8\)") as e:
        calibrate.evaluate("voltage", info, [12000.0, 24000.0], [0.8, 0.8], [0.0, 0.0], 1, 3, json.dumps(SIM_CONFIG))
    assert e.value.exit_code == 1
