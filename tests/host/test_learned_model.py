"""The learned model (issue 16): `edgeshadow train`, its alerts on generated streams with in-range
faults (detection, false alarms), and the same alerts on CPython, the MicroPython unix port and the
ESP32-like runtime (32-bit objects, float32)."""
import json

import pytest

from host_tools.model import evaluate as model_eval

from host_tools.model import streams

from host_tools.model import train
from host_tools.cli import main as cli
from host_tools.replay import ROOT, replay

ESP32LIKE = ROOT / ".venv" / "bin" / "micropython-esp32like"
CONFIG = model_eval.CONFIG


@pytest.fixture(scope="module")
def spec():
    return streams.load_spec()


@pytest.fixture(scope="module")
def trained(spec, tmp_path_factory):
    """One device's config trained on 2 normal days through the CLI, and the device."""
    tmp = tmp_path_factory.mktemp("model")
    dev = streams.device(spec, "grid-sensor-001", seed=1)
    nominal, _ = streams.stream(spec, dev, 0, 2)
    streams.write_jsonl(nominal, tmp / "nominal.jsonl")
    out = tmp / "trained.json"
    assert cli(["train", "--config", str(CONFIG), "--input", str(tmp / "nominal.jsonl"),
                "--output", str(out)]) == 0
    return tmp, dev, out


def test_train_writes_a_valid_config_small_enough_for_a_delta(trained):
    tmp, dev, out = trained
    cfg = json.loads(out.read_text())
    models = [r for r in cfg["rules"] if r["type"] == "model"]
    assert [r["metric"] for r in models] == ["temperature", "voltage"]
    # the reference rules stay as they were
    assert [r for r in cfg["rules"] if r["type"] != "model"] == json.loads(CONFIG.read_text())["rules"]
    assert train.delta_size(cfg) < 8192
    temp = models[0]
    assert temp["inputs"][0][:3] == ["current", 1, 2] and temp["excess"] == "hot_joint"
    # the thermal lag found is near the device's own (the grid's step)
    assert abs(temp["inputs"][0][3] - dev["thermal_tau_s"]) <= 600
    assert replay(str(out), str(tmp / "nominal.jsonl"), str(tmp / "out.jsonl")) == 0


def test_train_several_things_into_a_folder_or_one_by_name(spec, tmp_path, capsys):
    recs = []
    for name in ("grid-sensor-001", "grid-sensor-002"):
        r, _ = streams.stream(spec, streams.device(spec, name, seed=2), 0, 0.5)
        recs.append(r)
    streams.write_jsonl(streams.interleave(recs), tmp_path / "two.jsonl")
    args = ["train", "--config", str(CONFIG), "--input", str(tmp_path / "two.jsonl")]
    assert cli(args + ["--output", str(tmp_path / "one.json")]) == 1
    assert "holds 2 things: give --thing, or an --output folder" in capsys.readouterr().err
    assert cli(args + ["--output", str(tmp_path / "fleet"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["thing"] for s in summary] == ["grid-sensor-001", "grid-sensor-002"]
    for s in summary:
        cfg = json.loads((tmp_path / "fleet" / f"{s['thing']}.json").read_text())
        assert cfg["thing"] == s["thing"] and s["delta_bytes"] < 8192 and s["model_bytes"] < 1024
    assert cli(args + ["--output", str(tmp_path / "b.json"), "--thing", "grid-sensor-002"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["thing"] == "grid-sensor-002"
    assert cli(args + ["--output", str(tmp_path / "c.json"), "--thing", "nope"]) == 1
    assert "has no samples of nope" in capsys.readouterr().err


def test_train_rejects_bad_or_short_input(spec, tmp_path, capsys):
    recs, _ = streams.stream(spec, streams.device(spec, "grid-sensor-001"), 0, 0.1)
    streams.write_jsonl(recs, tmp_path / "short.jsonl")
    args = ["train", "--config", str(CONFIG), "--output", str(tmp_path / "t.json"), "--input"]
    assert cli(args + [str(tmp_path / "short.jsonl")]) == 1
    assert "need at least 2000" in capsys.readouterr().err
    lines = (tmp_path / "short.jsonl").read_text().splitlines()
    lines[5] = lines[5].replace('"voltage":', '"voltage":"x","v":')
    (tmp_path / "bad.jsonl").write_text("\n".join(lines))
    assert cli(args + [str(tmp_path / "bad.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "line 6: raw.v: not a metric of the config" in err
    assert not (tmp_path / "t.json").exists()


def _alerts(path):
    """Per output line: the alerts (without the value, a float each runtime prints its own way)
    and the diagnoses."""
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out.append((r["ts"], r["thing"],
                    [(a["metric"], a["rule"], a["state"], a["since"], a["reason"]) for a in r["alerts"]],
                    [(d["name"], d["confidence"]) for d in r["diagnoses"]]))
    return out


def test_model_alerts_are_identical_on_every_runtime(spec, trained):
    tmp, dev, cfg_path = trained
    parts = []
    # each fault and the load step from 02:30 to 03:36, after 1.5 h of normal samples from 01:00
    # (the model's warm-up, 5 thermal lags, then its statistics settle): by then each stream has
    # raised its alerts and diagnoses, and MicroPython's replays cost a third of what 6 h did
    for k, cls in enumerate(spec["faults"]):
        d = dict(dev, thing="grid-sensor-001-" + cls.replace("_", "-"))
        day0 = streams.EPOCH + (30 + k) * 86400
        recs, _ = streams.stream(spec, d, days=2.6 / 24, fault=cls, seed=3, start_ts=day0 + 3600,
                                 fault_at=day0 + 9000)
        parts.append(recs)
    streams.write_jsonl(streams.interleave(parts), tmp / "faults.jsonl")
    outs = {}
    for runtime in ("cpython", "micropython"):
        outs[runtime] = tmp / f"{runtime}.jsonl"
        assert replay(str(cfg_path), str(tmp / "faults.jsonl"), str(outs[runtime]), runtime=runtime) == 0
    assert outs["cpython"].read_bytes() == outs["micropython"].read_bytes()  # both float64
    cp = _alerts(outs["cpython"])
    raised = {(a[0], a[1]) for line in cp for a in line[2] if a[2] == "raised"}
    # the streams exercise the model on both metrics, not only quiet samples
    assert ("temperature", "model") in raised and ("voltage", "model") in raised
    assert any(d for line in cp for d in line[3])
    if not ESP32LIKE.exists():
        pytest.skip(f"{ESP32LIKE} is absent (`make esp32like` builds it): float32 runtime not compared")
    e32 = tmp / "esp32like.jsonl"
    assert replay(str(cfg_path), str(tmp / "faults.jsonl"), str(e32), runtime="esp32like") == 0
    assert _alerts(e32) == cp  # every alert and diagnosis, in float32
    assert e32.read_bytes() == outs["cpython"].read_bytes()  # and the whole output, values included


def test_evaluation_meets_the_must_show_thresholds():
    """A smaller seeded set than the closing note's (make test keeps it short: 2 devices trained
    on 7 normal days, not 12 on 14; the 14 test days cost as much as the training): every fault
    class found on at least 90 % of devices, and under 0.1 false alarms per device-day, the
    legitimate load step included."""
    res = model_eval.evaluate(n_devices=2, seed=5, hours=16, train_days=7)
    rows = res["rows"]
    for cls in ("hot_joint", "drift", "degradation", "frozen_sensor", "broken_relationship"):
        r = rows[cls]
        assert r["detected"] / r["streams"] >= 0.9, (cls, r)
    days = sum(r["days"] for r in rows.values())
    false = sum(r["false"] for r in rows.values())
    assert days > 4 and false / days < 0.1, (false, days)
    assert rows["load_step"]["false"] == 0 and rows["normal"]["false"] == 0
    # the z-score on current, as in the reference config, cannot tell a load cycle from a fault
    assert rows["normal"]["z_flagged"] / rows["normal"]["samples"] > 0.2


def test_hot_joint_scenario_raises_the_model_alert_and_names_it():
    """The demo's in-range fault: the virtual board's timeline (what its sensors report), through
    the config the demo injects (a model trained on the same device), sampled every 5 s as the demo
    does. The range rules stay quiet; the model raises and the diagnosis is hot_joint."""
    import time

    from host_tools import demo
    from host_tools.replay import firmware_modules
    from host_tools.sim import scenarios
    firmware_modules()
    from edge.pipeline import Device
    cfg = demo.device_config(8883, 5)
    gains = {m: c["calibration"][0]["gain"] for m, c in cfg["metrics"].items()
             if c["calibration"] and c["calibration"][0]["type"] == "linear"}
    built = scenarios.build("hot_joint", "grid-sensor-001", 1)
    sig, iv = built["timeline"]["signals"], built["timeline"]["interval_s"]
    dev = Device(demo.model_config(cfg, "grid-sensor-001", 1))
    t0 = int(time.time()) // iv * iv
    raised, diags = [], set()
    for k in range(90):  # 15 minutes
        for half in (0, 5):
            res = dev.process(t0 + k * iv + half,
                              {m: sig[m][k] / gains.get(m, 1.0) for m in streams.METRICS})
            raised += [(e["rule"], e["metric"], k * iv) for e in res["events"] if e["state"] == "raised"]
            diags |= {d["name"] for d in res["diagnoses"]}
    model = [r for r in raised if r[0] == "model"]
    assert model and model[0][1] == "temperature" and model[0][2] > 120  # after the fault began
    assert not [r for r in raised if r[0] in ("range", "rating")]
    assert "hot_joint:temperature" in diags


def test_stream_fault_of_a_scenario_is_validated():
    from host_tools.sim import scenarios
    assert scenarios.validate({"source": "streams", "stream_fault": {"kind": "nope", "after_s": 1}}) == [
        "stream_fault.kind: must be one of " + ", ".join(streams.load_spec()["faults"])]
    assert scenarios.validate({"source": "streams", "stream_fault": {"kind": "drift", "after_s": -1}}) == [
        "stream_fault.after_s: must be a number >= 0 (seconds after the board starts)"]


def test_train_bad_input_and_output_are_one_line_before_any_training(tmp_path, capsys):
    args = ["train", "--config", str(CONFIG)]
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"ts": 1, "thing": "Z\xfcrich", "raw": {}}\n')
    assert cli(args + ["--input", str(latin), "--output", str(tmp_path / "t.json")]) == 1
    err = capsys.readouterr().err
    assert err == (f"edgeshadow: error: input {latin} line 1: not UTF-8 text (byte 0xfc at column 22); "
                   "save it as UTF-8 JSON lines\n")
    one = tmp_path / "one.jsonl"
    one.write_text('{"ts": 1, "thing": "grid-sensor-001", "raw": {"voltage": 1}}\n')
    assert cli(args + ["--input", str(one), "--output", str(tmp_path / "no" / "t.json")]) == 1
    assert capsys.readouterr().err == (f"edgeshadow: error: cannot write output {tmp_path / 'no' / 't.json'}: "
                                       f"folder {tmp_path / 'no'} does not exist\n")
    assert cli(args + ["--input", str(tmp_path), "--output", str(tmp_path / "t.json")]) == 1
    assert capsys.readouterr().err == f"edgeshadow: error: cannot read input {tmp_path}: it is a folder; give a file\n"
    assert sorted(tmp_path.iterdir()) == sorted([latin, one])  # nothing written
