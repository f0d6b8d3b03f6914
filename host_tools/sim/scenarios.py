"""Scenarios for the virtual board: data files (host_tools/sim/scenarios/<name>.json) turned into
the physical timeline the board's simulated hardware replays.

`prepare(name, thing, seed, sim_dir)` writes sim_dir/scenario.json; the board's simhw.init() reads
it before the board's filesystem is remounted. A scenario file says:
  description   one line
  source        "profile" (base values with jitter), "smartgrid" (host_tools.sim.reference's
                reference generator, one sample per interval) or "streams" (host_tools.model.streams:
                the thing's own physics from now on, aligned to the host's time of day, with
                "stream_fault": {"kind", "after_s", and parameters to set} an in-range fault;
                `edgeshadow demo` gives such boards a model trained on the same device)
  interval_s, duration_s   timeline step and length (the timeline loops)
  profile       signal -> {"base": number, "jitter": number} (uniform +- jitter per step)
  anomaly_probability      smartgrid only (the timeline's "quiet" map keeps the nominal draw
                behind each anomalous sample: `edgeshadow bench` pauses the anomaly generator)
  events        [{"signal", "from_s", "until_s"?, "type": scale|set|ramp|heat, ...}] shaping signals:
                scale (factor), set (value), ramp (to, linear from the value at from_s),
                heat (to, tau_s: first-order approach, as a conductor warming under load)
  faults        [{"kind": stuck|disconnected|crc|timeout, "signal" or "address", "from_s",
                  "until_s"?, "probability"? (crc)}] applied by the simulated hardware
  wifi_outages  [[from_s, until_s], ...]
  noise         signal -> sensor noise sigma; hardware: overrides of the board's sim_hardware
"""
import json
import math
import random
import time
import zlib
from pathlib import Path

from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SIGNALS = ("voltage", "current", "temperature", "humidity", "pressure")
_EVENT_TYPES = ("scale", "set", "ramp", "heat")
_FAULT_KINDS = ("stuck", "disconnected", "crc", "timeout")


def list_scenarios():
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_scenario(name):
    path = SCENARIO_DIR / f"{name}.json"
    if not path.is_file():
        raise EdgeshadowError(f"unknown scenario '{name}'",
                              hint=f"known scenarios: {', '.join(list_scenarios())}")
    try:
        scn = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgeshadowError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})")
    problems = validate(scn)
    if problems:
        raise EdgeshadowError(f"{path}: " + "; ".join(problems))
    return scn


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate(scn):
    """Every problem in a scenario dict, as "path: message" strings."""
    p = []
    if scn.get("source", "profile") not in ("profile", "smartgrid", "streams"):
        p.append("source: must be profile, smartgrid or streams")
    sf = scn.get("stream_fault")
    if sf is not None:
        from host_tools.model import streams
        kinds = list(streams.load_spec()["faults"])
        if not isinstance(sf, dict) or sf.get("kind") not in kinds:
            p.append(f"stream_fault.kind: must be one of {', '.join(kinds)}")
        elif not (_num(sf.get("after_s")) and sf["after_s"] >= 0):
            p.append("stream_fault.after_s: must be a number >= 0 (seconds after the board starts)")
    for key in ("interval_s", "duration_s"):
        if key in scn and not (_num(scn[key]) and scn[key] > 0):
            p.append(f"{key}: must be a positive number")
    for sig, prof in scn.get("profile", {}).items():
        if sig not in SIGNALS:
            p.append(f"profile.{sig}: unknown signal (known: {', '.join(SIGNALS)})")
        elif not _num(prof.get("base")):
            p.append(f"profile.{sig}.base: must be a number")
    for i, ev in enumerate(scn.get("events", [])):
        if ev.get("signal") not in SIGNALS:
            p.append(f"events[{i}].signal: must be one of {', '.join(SIGNALS)}")
        if ev.get("type") not in _EVENT_TYPES:
            p.append(f"events[{i}].type: must be one of {', '.join(_EVENT_TYPES)}")
        if not _num(ev.get("from_s")):
            p.append(f"events[{i}].from_s: must be a number")
        need = {"scale": "factor", "set": "value", "ramp": "to", "heat": "to"}.get(ev.get("type"))
        if need and not _num(ev.get(need)):
            p.append(f"events[{i}].{need}: must be a number")
    for i, f in enumerate(scn.get("faults", [])):
        if f.get("kind") not in _FAULT_KINDS:
            p.append(f"faults[{i}].kind: must be one of {', '.join(_FAULT_KINDS)}")
        elif f["kind"] == "stuck" and f.get("signal") not in SIGNALS:
            p.append(f"faults[{i}].signal: must be one of {', '.join(SIGNALS)}")
        elif f["kind"] != "stuck" and not isinstance(f.get("address"), int):
            p.append(f"faults[{i}].address: must be an I2C address (integer)")
    for i, o in enumerate(scn.get("wifi_outages", [])):
        if not (isinstance(o, list) and len(o) == 2 and all(map(_num, o)) and o[0] < o[1]):
            p.append(f"wifi_outages[{i}]: must be [from_s, until_s] with from_s < until_s")
    return p


def _series_smartgrid(scn, thing, seed, n, interval):
    """The reference generator's series for `thing` (as reference.generate draws them) and, for
    the bench-quiet mode (simhw.bench_quiet), the nominal draw behind each anomalous sample:
    (series, {signal: [[index, nominal value], ...]})."""
    from host_tools.sim import reference
    p = scn.get("anomaly_probability", 0.1)
    rng = random.Random(seed)
    out = {m: [] for m in reference.METRICS}
    quiet = {m: [] for m in reference.METRICS}
    for i in range(n):
        anomalous = p >= 1.0 or rng.random() < p
        state = rng.getstate()
        nominal = reference.nominal_sample(rng)
        rng.setstate(state)  # the same draws again, then the anomaly generator's
        sample = reference.reference_sample(rng, anomalies=anomalous)
        for m in out:
            out[m].append(round(sample[m], 2))
            if sample[m] != nominal[m]:
                quiet[m].append([i, round(nominal[m], 2)])
    return out, {m: pairs for m, pairs in quiet.items() if pairs}


def stream_device(thing, seed=0):
    """The host_tools.model.streams device a "streams" scenario simulates for `thing` (the demo trains
    its model on this same device)."""
    from host_tools.model import streams
    return streams.device(streams.load_spec(), thing, seed)


def _series_streams(scn, thing, seed, n, interval):
    from host_tools.model import streams
    spec = streams.load_spec()
    spec = dict(spec, interval_s=interval)
    start = int(time.time()) // interval * interval
    sf = scn.get("stream_fault") or {}
    over = {k: v for k, v in sf.items() if k not in ("kind", "after_s")}
    records, _ = streams.stream(spec, stream_device(thing, seed), days=n * interval / 86400,
                                fault=sf.get("kind"), start_ts=start, seed=seed,
                                fault_at=start + int(sf.get("after_s", 0)), overrides=over)
    return {m: [r["raw"][m] for r in records] for m in streams.METRICS}


def _series_profile(scn, rng, n):
    out = {}
    for sig, prof in scn.get("profile", {}).items():
        base, jitter = prof["base"], prof.get("jitter", 0.0)
        out[sig] = [base + rng.uniform(-jitter, jitter) for _ in range(n)]
    return out


def _apply_events(series, events, interval):
    for ev in events:
        values = series.get(ev["signal"])
        if values is None:
            continue
        start = ev["from_s"]
        end = ev.get("until_s")
        i0 = min(len(values) - 1, int(math.ceil(start / interval)))
        v0 = values[i0]
        for i in range(len(values)):
            t = i * interval
            if t < start or (end is not None and t >= end):
                continue
            kind = ev["type"]
            if kind == "scale":
                values[i] *= ev["factor"]
            elif kind == "set":
                values[i] = ev["value"]
            elif kind == "ramp":
                span = (end - start) if end is not None else ev.get("over_s", interval)
                share = min(1.0, (t - start) / span) if span > 0 else 1.0
                values[i] = v0 + (ev["to"] - v0) * share
            else:    # heat: first-order approach from the value at from_s toward `to`
                values[i] = v0 + (ev["to"] - v0) * (1.0 - math.exp(-(t - start) / ev.get("tau_s", 300.0)))
    return series


def build(name, thing="grid-sensor-001", seed=0, board="sim", time_scale=1.0):
    """The scenario.json dict simhw loads (pure: nothing written)."""
    scn = load_scenario(name)
    if not (_num(time_scale) and time_scale > 0):
        raise EdgeshadowError(f"time_scale must be a positive number, got {time_scale!r}")
    bdef = load_board(board)
    hardware = dict(bdef.get("sim_hardware") or {})
    if not hardware:
        raise EdgeshadowError(f"board '{board}' has no sim_hardware section: it cannot be simulated")
    hardware.pop("description", None)
    for key, value in scn.get("hardware", {}).items():
        if key == "adc" and isinstance(value, dict):
            adc = {pin: dict(cfg) for pin, cfg in hardware.get("adc", {}).items()}
            for pin, over in value.items():
                adc.setdefault(pin, {}).update(over)
            hardware["adc"] = adc
        else:
            hardware[key] = value
    interval = scn.get("interval_s", 10)
    n = max(2, int(scn.get("duration_s", 600) // interval) + 1)
    thing_seed = (seed * 1000003 + zlib.crc32(thing.encode())) & 0x7FFFFFFF
    quiet = {}
    if scn.get("source") in ("smartgrid", "streams"):
        if scn["source"] == "smartgrid":
            series, quiet = _series_smartgrid(scn, thing, thing_seed, n, interval)
        else:
            series = _series_streams(scn, thing, seed, n, interval)
        for sig, prof in scn.get("profile", {}).items():
            series.setdefault(sig, [prof["base"]] * n)
    else:
        series = _series_profile(scn, random.Random(thing_seed), n)
    _apply_events(series, scn.get("events", []), interval)
    return {"name": name, "description": scn.get("description", ""), "thing": thing,
            "seed": thing_seed, "time_scale": float(time_scale), "loop": scn.get("loop", True),
            "timeline": {"interval_s": interval,
                         "signals": {k: [None if v is None else round(v, 4) for v in vals]
                                     for k, vals in series.items()},
                         "quiet": quiet},
            "hardware": hardware, "noise": scn.get("noise", {}),
            "faults": scn.get("faults", []), "wifi_outages": scn.get("wifi_outages", [])}


def prepare(name, thing, seed, sim_dir, board="sim", time_scale=1.0):
    """Write sim_dir/scenario.json for the virtual board; returns its path."""
    data = build(name, thing, seed, board, time_scale)
    sim_dir = Path(sim_dir)
    sim_dir.mkdir(parents=True, exist_ok=True)
    path = sim_dir / "scenario.json"
    tmp = sim_dir / "scenario.json.tmp"
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(path)
    return path


def ratios(board="sim"):
    """signal -> line units per volt RMS at the ADC, as the simulated hardware wires it (what
    `edgeshadow calibrate` should recover)."""
    hw = load_board(board).get("sim_hardware") or {}
    return {cfg["signal"]: cfg["ratio"] for cfg in hw.get("adc", {}).values() if "ratio" in cfg}
