"""`edgeshadow replay`: the pipeline over recorded data, on CPython and inside MicroPython."""
import io
import json
import os
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


# ---------------------------------------------------------------- bad input: one line naming it

def cli_replay(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "host_tools", "replay", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def error_line(proc):
    """The one stderr line of a refused replay (no traceback, nothing on stdout)."""
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeshadow: error: "), proc.stderr
    return lines[0][len("edgeshadow: error: "):]


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_binary_input_is_named_with_its_line(tmp_path, runtime):
    inp = tmp_path / "in.jsonl"
    first = SAMPLE.read_bytes().split(b"\n", 1)[0]
    inp.write_bytes(first + b"\n" + Path(sys.executable).read_bytes()[:4096])  # an ELF file after line 1
    out = tmp_path / "out.jsonl"
    proc = cli_replay("--config", CONFIG, "--input", inp, "--output", out, "--runtime", runtime)
    assert proc.returncode == 1
    assert error_line(proc).startswith(f"input {inp} line 2: a NUL byte at column ")
    assert list(tmp_path.iterdir()) == [inp]  # nothing written


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_non_utf8_input_is_named_with_its_line_and_column(tmp_path, runtime):
    inp = tmp_path / "latin1.jsonl"
    lines = SAMPLE.read_text().splitlines()[:3]
    lines.insert(2, '{"ts": 1, "thing": "Zürich", "raw": {}}')
    inp.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    proc = cli_replay("--config", CONFIG, "--input", inp, "--runtime", runtime)
    assert proc.returncode == 1
    assert error_line(proc) == (f"input {inp} line 3: not UTF-8 text (byte 0xfc at column 22); "
                                "save it as UTF-8 JSON lines")


def test_a_long_line_across_read_blocks_is_checked_whole(tmp_path):
    inp = tmp_path / "long.jsonl"
    good = SAMPLE.read_text().splitlines()[0]
    pad = " " * (rp._CHUNK + 10)  # the bad byte lands in the second block of one line
    inp.write_bytes((good + "\n" + good[:-1] + pad + "}\n").encode() + b'{"x": "\xe9"}\n')
    with pytest.raises(EdgeshadowError, match=r"line 3: not UTF-8 text \(byte 0xe9 at column 8\)"):
        rp.text_lines(inp)
    inp.write_bytes((good + "\n" + good[:-1] + pad + "}\n" + good).encode())  # no final newline
    assert rp.text_lines(inp) == 3


@pytest.mark.parametrize("output,message", [
    ("missing/out.jsonl", "cannot write output {tmp}/missing/out.jsonl: folder {tmp}/missing does not exist"),
    (".", "cannot write output {tmp}: it is a folder; give a file name"),
])
@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_output_into_a_missing_folder_or_onto_a_folder(tmp_path, output, message, runtime):
    target = tmp_path / output if output != "." else tmp_path
    proc = cli_replay("--config", CONFIG, "--input", SAMPLE, "--output", target, "--runtime", runtime)
    assert proc.returncode == 1
    assert error_line(proc) == message.format(tmp=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content,message", [
    (None, "cannot read config {c}: no such file"),
    (b"\x7fELF\x02\x01\x01\x00", "config {c} line 1: a NUL byte at column 8: a binary file, not JSON lines"),
    (b"\xff\xfe{}", "config {c} line 1: not UTF-8 text (byte 0xff at column 1); save it as UTF-8 JSON lines"),
    (b"{", "config {c} is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"[]", "config {c} is not a valid config: (config): must be a JSON object"),
    (b"{}", "config {c} is not a valid config: thing: required; metrics: required"),
])
def test_a_missing_or_invalid_config_is_one_line(tmp_path, content, message):
    cfg = tmp_path / "c.json"
    if content is not None:
        cfg.write_bytes(content)
    proc = cli_replay("--config", cfg, "--input", SAMPLE)
    assert proc.returncode == 1
    assert error_line(proc) == message.format(c=cfg)


def test_a_folder_as_input_or_config(tmp_path):
    proc = cli_replay("--config", CONFIG, "--input", tmp_path)
    assert error_line(proc) == f"cannot read input {tmp_path}: it is a folder; give a file"
    proc = cli_replay("--config", tmp_path, "--input", SAMPLE)
    assert error_line(proc) == f"cannot read config {tmp_path}: it is a folder; give a file"


def test_output_may_be_the_input_and_keeps_the_umask(tmp_path):
    inp = tmp_path / "data.jsonl"
    inp.write_bytes(SAMPLE.read_bytes())
    expected = subprocess.run([sys.executable, "-m", "host_tools", "replay", "--config", str(CONFIG), "--input",
                               str(SAMPLE)], capture_output=True, cwd=ROOT, timeout=120).stdout
    proc = cli_replay("--config", CONFIG, "--input", inp, "--output", inp)
    assert proc.returncode == 0 and proc.stderr == ""
    assert inp.read_bytes() == expected
    umask = os.umask(0)
    os.umask(umask)
    assert inp.stat().st_mode & 0o777 == 0o666 & ~umask


def test_progress_on_stderr_for_a_long_replay_and_not_for_a_short_one(tmp_path):
    inp = tmp_path / "in.jsonl"
    scenario.write_jsonl(scenario.generate(21, 500, seed=5), inp)  # 10,500 lines
    proc = cli_replay("--config", CONFIG, "--input", inp, "--output", tmp_path / "o.jsonl", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["records"] == 10500   # stdout: the summary alone
    err = proc.stderr.splitlines()
    assert err[0] == f"replaying {inp} (10500 lines) ..." and err[-1] == f"  replaying {inp}: 10500/10500"
    proc = cli_replay("--config", CONFIG, "--input", SAMPLE, "--output", tmp_path / "o.jsonl")
    assert proc.returncode == 0 and proc.stderr == ""
