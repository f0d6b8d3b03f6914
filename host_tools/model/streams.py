"""Realistic grid-sensor streams with in-range faults (for `edgeshadow train` and the model's
evaluation, host_tools.model.evaluate). The physics and the fault kinds are data:
host_tools/data/streams.json.

Each device draws its constants (load cycle, ambient, thermal rise and lag, voltage sag) once
from its seed; each day draws its weather and load level. A stream is a list of replay records
{"ts", "thing", "raw": {"voltage", "current", "temperature", "humidity"}} (2 decimals) plus, for a
fault, where it starts and ends and which signal it touches.

    spec = load_spec()
    dev = device(spec, "grid-sensor-001", seed=1)
    records, fault = stream(spec, dev, day=0, days=2)                        # normal operation
    records, fault = stream(spec, dev, day=10, days=1, fault="hot_joint", seed=7)
"""
import json
import math
import random
import zlib
from pathlib import Path

from host_tools import DATA_DIR
from host_tools.errors import EdgeshadowError

DATA = DATA_DIR / "streams.json"
EPOCH = 1704067200  # 2024-01-01 00:00 UTC: day d starts at EPOCH + d * 86400
METRICS = ("voltage", "current", "temperature", "humidity")


def load_spec(path=DATA):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise EdgeshadowError(f"cannot read the stream spec {path}: {e}")


def fault_kinds(spec):
    return [k for k, f in spec["faults"].items() if f.get("fault", True)]


def _draw(rng, r):
    return rng.uniform(r[0], r[1]) if isinstance(r, list) else r


def device(spec, thing, seed=0):
    """A device's constants, drawn from the spec's ranges (the same thing and seed: the same device)."""
    rng = random.Random((seed * 1000003 + zlib.crc32(thing.encode())) & 0x7FFFFFFF)
    # a range is drawn once per device, except the load level: drawn per day
    d = {k: v if k == "load_day_factor" else _draw(rng, v) for k, v in sorted(spec["device"].items())}
    d["thing"] = thing
    d["seed"] = rng.randrange(1 << 30)
    return d


def _day_draws(dev, day):
    rng = random.Random(dev["seed"] * 7919 + day)
    return {"load": _draw(rng, dev["load_day_factor"]),
            "ambient": rng.uniform(-dev["ambient_day_offset"], dev["ambient_day_offset"])}


def _shape(h):
    """Load over the day (0..~1): a morning and a larger evening peak."""
    return 0.55 * math.exp(-((h - 9.0) / 3.0) ** 2) + math.exp(-((h - 19.0) / 2.5) ** 2)


class _AR:
    """First-order autoregressive wander with stationary deviation sigma and time constant tau."""

    def __init__(self, rng, sigma, tau, dt):
        self.rng, self.sigma = rng, sigma
        self.phi = math.exp(-dt / tau)
        self.k = math.sqrt(1 - self.phi ** 2) * sigma
        self.x = rng.gauss(0, sigma)

    def step(self):
        self.x = self.phi * self.x + self.k * self.rng.gauss(0, 1)
        return self.x


def stream(spec, dev, day=0, days=1, fault=None, seed=0, start_h=None, start_ts=None, fault_at=None,
           overrides=None):
    """(records, fault_info) for `days` days from `day` (or from start_ts, any second of a day).
    fault: a kind of spec["faults"] or None, starting start_h hours into the day (default: drawn
    from spec["fault_start_h"]) or at the timestamp fault_at; overrides: the fault's drawn
    parameters to set (e.g. {"extra_rise": 3.0}). fault_info: {"kind", "signal", "start", "end",
    "fault": bool, and its parameters} or None."""
    if fault is not None and fault not in spec["faults"]:
        raise EdgeshadowError(f"unknown fault kind {fault!r} (known: {', '.join(spec['faults'])})")
    dt = spec["interval_s"]
    rng = random.Random((dev["seed"] * 31 + day * 1009 + seed * 7) & 0x7FFFFFFF)
    n = int(days * 86400 // dt)
    t0 = EPOCH + day * 86400 if start_ts is None else start_ts // dt * dt
    info = None
    if fault is not None:
        info = _fault_info(spec, fault, rng, t0, n, start_h, fault_at)
        info.update(overrides or {})
    return _generate(spec, dev, rng, t0, n, days, info), info


def _fault_info(spec, fault, rng, t0, n, start_h, fault_at):
    """Where the fault starts and ends, which signal it touches and its drawn parameters."""
    dt = spec["interval_s"]
    f = spec["faults"][fault]
    lo, hi = spec["fault_start_h"] if start_h is None else (start_h, start_h)
    start = t0 + int(rng.uniform(lo, hi) * 3600) // dt * dt if fault_at is None else fault_at
    signal = f.get("signal") or rng.choice(f["signals"])
    info = {"kind": fault, "signal": signal, "start": start, "end": t0 + n * dt,
            "fault": f.get("fault", True)}
    if fault == "hot_joint":
        info["extra_rise"] = _draw(rng, f["extra_rise"])
    elif fault == "drift":
        info["per_day"] = _draw(rng, f["per_day"][signal]) * rng.choice((-1, 1))
    elif fault == "degradation":
        info["noise_factor"] = _draw(rng, f["noise_factor"])
    elif fault == "broken_relationship":
        info["sag_left"] = _draw(rng, f["sag_left"])
    elif fault == "load_step":
        info["step"] = _draw(rng, f["step"]) * spec["rated_current"]
        info["end"] = min(info["end"], start + int(_draw(rng, f["hold_s"])))
    return info


def _day_blend(draws, ts):
    """The load level and ambient offset at ts: they change smoothly from one day's noon to the next."""
    h = (ts % 86400) / 3600.0
    d = (ts - EPOCH) // 86400
    share = (h - 12.0) / 24.0
    a, b = (draws[d - 1], draws[d]) if share < 0 else (draws[d], draws[d + 1])
    share = share + 1 if share < 0 else share
    return a["load"] + (b["load"] - a["load"]) * share, a["ambient"] + (b["ambient"] - a["ambient"]) * share


def _generate(spec, dev, rng, t0, n, days, info):
    """The records: n samples from t0, the device's physics, and the fault while it is active."""
    dt = spec["interval_s"]
    rated = spec["rated_current"]
    day = (t0 - EPOCH) // 86400
    draws = {d: _day_draws(dev, d) for d in range(day - 1, day + int(math.ceil(days)) + 1)}
    wander = (_AR(rng, dev["load_wander"], dev["load_wander_tau_s"], dt),
              _AR(rng, dev["humidity_wander"], 10800, dt),
              _AR(rng, dev["voltage_wander"], dev["voltage_wander_tau_s"], dt))
    noise = {"temperature": dev["temperature_noise"], "voltage": dev["voltage_noise"]}
    lag = 1 - math.exp(-dt / dev["thermal_tau_s"])
    state = {"temp": None, "frozen": None}
    out = []
    for i in range(n):
        ts = t0 + i * dt
        h = (ts % 86400) / 3600.0
        level, amb_off = _day_blend(draws, ts)
        kind = info["kind"] if info is not None and info["start"] <= ts < info["end"] else None
        load = (dev["load_base"] + dev["load_peak"] * _shape(h)) * level + wander[0].step()
        current = max(0.02, load) * rated + (info["step"] if kind == "load_step" else 0)
        ambient = dev["ambient_mean"] + amb_off + dev["ambient_amplitude"] * math.cos(2 * math.pi * (h - 15) / 24)
        humidity = (dev["humidity_mean"] + dev["humidity_per_c"] * (ambient - dev["ambient_mean"])
                    + wander[1].step())
        heat = dev["thermal_rise"] * (current / rated) ** 2 * (1 + info["extra_rise"] if kind == "hot_joint" else 1)
        steady = ambient + dev["thermal_offset"] + heat
        temp = state["temp"] = steady if state["temp"] is None else state["temp"] + (steady - state["temp"]) * lag
        sag = dev["sag_per_a"] * (info["sag_left"] if kind == "broken_relationship" else 1.0)
        voltage = (dev["voltage_nominal"] + dev["voltage_daily"] * math.cos(2 * math.pi * (h - 4) / 24)
                   - sag * current + wander[2].step())
        raw = {"voltage": voltage + rng.gauss(0, noise["voltage"]),
               "current": current + rng.gauss(0, dev["current_noise"]),
               "temperature": temp + rng.gauss(0, noise["temperature"]),
               "humidity": humidity + rng.gauss(0, dev["humidity_noise"])}
        if kind is not None:
            _apply_fault(raw, kind, info, ts, rng, noise, state)
        out.append({"ts": ts, "thing": dev["thing"], "raw": {m: round(raw[m], 2) for m in METRICS}})
    return out


def _apply_fault(raw, kind, info, ts, rng, noise, state):
    """A sensor fault on the readings (the physical ones, hot_joint and the rest, are in _generate)."""
    if kind == "drift":
        raw[info["signal"]] += info["per_day"] * (ts - info["start"]) / 86400
    elif kind == "degradation":
        raw[info["signal"]] += rng.gauss(0, noise[info["signal"]] * math.sqrt(info["noise_factor"] ** 2 - 1))
    elif kind == "frozen_sensor":
        if state["frozen"] is None:
            state["frozen"] = raw[info["signal"]]
        raw[info["signal"]] = state["frozen"]


def interleave(streams):
    """One record list from several things' streams, ordered by time (as a fleet's recording)."""
    return sorted((r for s in streams for r in s), key=lambda r: (r["ts"], r["thing"]))


def write_jsonl(records, path):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python -m host_tools.model.streams",
                                description="Write generated grid-sensor streams (replay format) to a JSONL file.")
    p.add_argument("--things", type=int, default=1, help="devices grid-sensor-001... (default 1)")
    p.add_argument("--day", type=int, default=0, help="first day (days after 2024-01-01; default 0)")
    p.add_argument("--days", type=float, default=1.0, help="days of samples (default 1)")
    p.add_argument("--fault", help="an in-range fault kind (default none): " + ", ".join(load_spec()["faults"]))
    p.add_argument("--start-h", type=float, help="hours into the first day the fault begins")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="OUT.jsonl")
    args = p.parse_args(argv)
    spec = load_spec()
    try:
        parts, faults = [], []
        for i in range(1, args.things + 1):
            dev = device(spec, f"grid-sensor-{i:03d}", args.seed)
            recs, info = stream(spec, dev, args.day, args.days, fault=args.fault, seed=args.seed,
                                start_h=args.start_h)
            parts.append(recs)
            if info:
                faults.append(dict(info, thing=dev["thing"]))
    except EdgeshadowError as e:
        p.error(str(e))
    try:
        write_jsonl(interleave(parts), args.out)
    except OSError as e:
        p.exit(1, f"{p.prog}: error: cannot write {args.out}: {e.strerror or e}\n")
    for f in faults:
        print(json.dumps(f, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
