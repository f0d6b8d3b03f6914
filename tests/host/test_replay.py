"""`edgeshadow replay`: the pipeline over recorded data, on CPython and inside MicroPython."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import replay as rp
from host_tools.sim import reference as scenario
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "host_tools" / "data" / "configs" / "grid-sensor.json"
SAMPLE = ROOT / "host_tools" / "data" / "samples" / "grid-21x60.jsonl"
LIMITS = {"voltage": "range", "current": "rating", "temperature": "range", "humidity": "range"}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def flagged(out_rec):
    """{(metric, rule)} shown as raised or active on an output line."""
    return {(a["metric"], a["rule"]) for a in out_rec["alerts"] if a["state"] in ("raised", "active")}


def test_10000_samples_from_21_sensors_every_out_of_range_value_flagged(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    scenario.write_jsonl(scenario.generate(21, 477, seed=7), inp)  # 10,017 samples, issue's generator
    assert rp.replay(CONFIG, inp, out) == 0
    ins, outs = read_jsonl(inp), read_jsonl(out)
    assert len(ins) == len(outs) == 10017
    assert len({r["thing"] for r in ins}) == 21
    n_out = 0
    for i, o in zip(ins, outs):
        assert (o["ts"], o["thing"]) == (i["ts"], i["thing"])
        f = flagged(o)
        for metric, rule in LIMITS.items():
            v = i["raw"][metric]
            bad = scenario.is_out_of_range(metric, v, rating=600)
            assert ((metric, rule) in f) is bad, (i, o)
            n_out += bad
        for a in o["alerts"]:  # every alert names this line's thing and a metric of it
            assert a["metric"] in LIMITS and o["thing"] == i["thing"]
    assert n_out > 4000  # the generator makes most samples anomalous somewhere


def test_persistent_anomaly_1000_samples_flagged_on_every_sample(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    recs = list(scenario.persistent_anomaly(n_normal=100, n_anomalous=1000, metric="voltage"))
    recs += list(scenario.persistent_anomaly(thing="grid-sensor-002", n_normal=100, n_anomalous=1000,
                                             metric="current", value=450, spread=20))
    scenario.write_jsonl(recs, inp)
    assert rp.replay(CONFIG, inp, out) == 0
    outs = read_jsonl(out)
    volt = [o for o in outs if o["thing"] == "grid-sensor-001"][100:]
    cur = [o for o in outs if o["thing"] == "grid-sensor-002"][100:]
    assert len(volt) == len(cur) == 1000
    assert all(("voltage", "range") in flagged(o) for o in volt)
    # 450 A is inside the 600 A rating: only the frozen zscore baseline catches it, every sample
    assert all(flagged(o) == {("current", "zscore")} for o in cur)
    assert all(not flagged(o) for o in outs if o["thing"] == "grid-sensor-002" and o["ts"] < cur[0]["ts"])


def test_sku_300_amps(tmp_path):
    inp = tmp_path / "in.jsonl"
    scenario.write_jsonl([{"ts": 1, "thing": "t", "raw": {"current": 300.0}}], inp)
    results = {}
    for name in ("MV-200A", "MV-500A"):
        cfg = json.loads(CONFIG.read_text())
        cfg["sku"] = scenario.sku(name)
        del cfg["sku"]["description"]
        (tmp_path / "c.json").write_text(json.dumps(cfg))
        rp.replay(tmp_path / "c.json", inp, tmp_path / "o.jsonl")
        results[name] = ("current", "rating") in flagged(read_jsonl(tmp_path / "o.jsonl")[0])
    assert results == {"MV-200A": True, "MV-500A": False}


def run_both(tmp_path, inp, config=CONFIG):
    """Replay on every runtime here (the ESP32-like one where it is built)."""
    from host_tools.sim import runtimes
    outs = {}
    for runtime in rp.RUNTIMES:
        if runtime == "esp32like" and not runtimes.available("esp32like"):
            continue
        out = tmp_path / f"{runtime}.jsonl"
        assert rp.replay(config, inp, out, runtime=runtime) == 0
        outs[runtime] = out.read_bytes()
    return outs


def test_micropython_output_identical_on_bundled_sample(tmp_path):
    outs = run_both(tmp_path, SAMPLE)
    assert outs["cpython"] == outs["micropython"]
    # float32, 32-bit: values to 7 significant digits, rounding and confidences decided alike
    assert outs.get("esp32like", outs["cpython"]) == outs["cpython"]
    lines = outs["cpython"].decode().splitlines()
    assert len(lines) == len(SAMPLE.read_text().splitlines())
    assert any('"state": "raised"' in line for line in lines)


def test_micropython_output_identical_with_zscore_diagnoses_and_calibration(tmp_path):
    # long enough for the zscore baselines to freeze; a non-trivial calibration chain
    inp = tmp_path / "in.jsonl"
    recs = list(scenario.generate(3, 200, seed=11, anomaly_probability=0.2, decimals=4))
    recs[5]["raw"]["current"] = None
    recs += scenario.persistent_anomaly(thing="grid-sensor-009", n_normal=100, n_anomalous=50,
                                        value=450, spread=20)
    scenario.write_jsonl(recs, inp)
    cfg = json.loads(CONFIG.read_text())
    cfg["metrics"]["current"]["calibration"] = [{"type": "linear", "gain": 1.0137, "offset": -0.31},
                                                {"type": "ema", "alpha": 0.3}]
    cfg["metrics"]["temperature"]["calibration"] = [{"type": "median", "window": 3}, {"type": "round", "decimals": 1}]
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    outs = run_both(tmp_path, inp, tmp_path / "c.json")
    assert outs["cpython"] == outs["micropython"]
    if "esp32like" in outs:  # alerts and diagnoses alike; values to the precision float32 holds
        for a, b in zip(outs["cpython"].decode().splitlines(), outs["esp32like"].decode().splitlines()):
            a, b = json.loads(a), json.loads(b)
            assert (a["diagnoses"], a["thing"], a["ts"]) == (b["diagnoses"], b["thing"], b["ts"])
            assert [dict(x, value=None) for x in a["alerts"]] == [dict(x, value=None) for x in b["alerts"]]
            pairs = [(a["values"][m], b["values"][m]) for m in a["values"]]
            pairs += [(x.get("value"), y.get("value")) for x, y in zip(a["alerts"], b["alerts"])]
            for v, w in pairs:
                assert (v is None) == (w is None)
                assert v is None or abs(v - w) <= 1e-5 * max(1.0, abs(v)), (v, w)
    text = outs["cpython"].decode()
    assert '"rule": "zscore"' in text and '"confidence"' in text and '"current": null' in text


BAD_LINES = [
    ('{"ts": 1, "thing": "a", "raw": {"voltage": 24000}}', None),
    ('not json', "line 2: not valid JSON"),
    ('{"ts": "noon", "thing": "a", "raw": {}}', "line 3: ts: must be a number (unix seconds)"),
    ('{"ts": 2, "thing": "a", "raw": {"voltage": "high"}}', "line 4: raw.voltage: must be a finite number or null"),
    ('{"ts": 3, "thing": "a", "raw": {"power": 1}}',
     "line 5: raw.power: not a metric of the config (known: current, humidity, temperature, voltage)"),
    ('[1, 2]', "line 6: line must be a JSON object"),
    ('{"ts": 0, "thing": "a", "raw": {}}', "line 7: ts: 0 is before the previous sample of a (1)"),
    ('{"ts": 4, "raw": {}}', "line 8: thing: required"),
    ('{"ts": 5, "thing": "a", "raw": {"voltage": 100000}}', None),
]


def write_bad_input(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(line for line, _ in BAD_LINES) + "\n")
    return inp


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_bad_lines_reported_with_line_numbers_and_skipped(tmp_path, runtime):
    inp, out = write_bad_input(tmp_path), tmp_path / "out.jsonl"
    err = io.StringIO()
    assert rp.replay(CONFIG, inp, out, runtime=runtime, stderr=err) == 1
    assert err.getvalue().splitlines() == [msg for _, msg in BAD_LINES if msg]
    outs = read_jsonl(out)
    assert [o["ts"] for o in outs] == [1, 5]
    assert outs[1]["alerts"][0]["state"] == "raised"


def test_bad_config_names_every_problem(tmp_path):
    cfg = json.loads(CONFIG.read_text())
    cfg["rules"][2]["min"] = "thirty"
    cfg["metrics"]["current"]["calibration"][0]["type"] = "foo"
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgeshadowError) as e:
        rp.replay(tmp_path / "c.json", SAMPLE, tmp_path / "o.jsonl")
    assert "rules[2].min: must be a number" in str(e.value)
    assert "metrics.current.calibration[0].type: unknown stage 'foo'" in str(e.value)
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(EdgeshadowError, match="unknown runtime"):
        rp.replay(CONFIG, SAMPLE, runtime="jython")


def test_cli(tmp_path):
    inp, out = write_bad_input(tmp_path), tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "host_tools", "replay", "--config", str(CONFIG), "--input", str(inp)]
    proc = subprocess.run(cmd + ["--output", str(out), "--runtime", "micropython"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "line 2: not valid JSON" in proc.stderr and len(read_jsonl(out)) == 2
    proc = subprocess.run(cmd[:-2] + ["--input", str(SAMPLE)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1260
    proc = subprocess.run(cmd[:4] + ["--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "--runtime" in proc.stdout
    proc = subprocess.run(cmd[:4] + ["--config", str(tmp_path / "missing.json"), "--input", str(inp)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "cannot read config" in proc.stderr
