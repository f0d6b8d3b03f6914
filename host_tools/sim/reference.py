"""The reference smart-grid scenario: grid-line sensors reporting voltage, current, temperature and
humidity every 10 s (the product's origin; the demo, the virtual board and the tests reuse it).

Nominal readings are uniform draws in NOMINAL. The anomaly generator draws r from 1 to 10 per
sample: r=1 all four metrics 0; r=2 current 1000, voltage 100000, temperature 300, humidity 150;
r=3 current 1000 only; r=4 voltage 100000 only; r=5 temperature 300 only; r=6 humidity 150 only;
otherwise nominal. SKU profiles (rated values) are data: host_tools/data/skus.json.
"""
import json
import random
from pathlib import Path

from host_tools import DATA_DIR
from host_tools.errors import EdgeshadowError

DATA = DATA_DIR
METRICS = ("voltage", "current", "temperature", "humidity")
NOMINAL = {"voltage": (23000.0, 25000.0), "current": (0.0, 600.0),
           "temperature": (30.0, 100.0), "humidity": (20.0, 80.0)}
ANOMALY = {"voltage": 100000.0, "current": 1000.0, "temperature": 300.0, "humidity": 150.0}
# r -> the metrics the anomaly generator sets (r=1 sets all four to 0; 7..10 are nominal)
_R_METRICS = {2: METRICS, 3: ("current",), 4: ("voltage",), 5: ("temperature",), 6: ("humidity",)}


def nominal_sample(rng):
    return {m: rng.uniform(*NOMINAL[m]) for m in METRICS}


def reference_sample(rng, anomalies=True):
    """One sample {"voltage", "current", "temperature", "humidity"}; with anomalies, the issue's
    r=1..10 generator."""
    s = nominal_sample(rng)
    if anomalies:
        r = rng.randint(1, 10)
        if r == 1:
            for m in METRICS:
                s[m] = 0.0
        for m in _R_METRICS.get(r, ()):
            s[m] = ANOMALY[m]
    return s


def is_out_of_range(metric, value, rating=None):
    """The scenario's ground truth: outside the nominal range (or above the SKU rating for current)."""
    lo, hi = NOMINAL[metric]
    if metric == "current" and rating is not None:
        hi = rating
    return value < lo or value > hi


def thing_names(things):
    if isinstance(things, int):
        if things < 1:
            raise EdgeshadowError(f"need at least one thing, got {things}")
        return [f"grid-sensor-{i:03d}" for i in range(1, things + 1)]
    return list(things)


def generate(things, n_samples, interval_s=10, start_ts=1700000000, seed=0, anomaly_probability=1.0,
             decimals=2):
    """Yield {"ts", "thing", "raw"} records: n_samples per thing, things interleaved by time.
    `things` is a count (grid-sensor-001...) or a list of names. anomaly_probability is the chance
    a sample comes from the anomaly generator (1.0: every sample, as the issue's generator)."""
    names = thing_names(things)
    if not 0.0 <= anomaly_probability <= 1.0:
        raise EdgeshadowError(f"anomaly_probability must be in [0, 1], got {anomaly_probability}")
    rng = random.Random(seed)
    for i in range(n_samples):
        ts = start_ts + i * interval_s
        for name in names:
            anomalous = anomaly_probability >= 1.0 or rng.random() < anomaly_probability
            s = reference_sample(rng, anomalies=anomalous)
            yield {"ts": ts, "thing": name, "raw": {m: round(s[m], decimals) for m in METRICS}}


def persistent_anomaly(thing="grid-sensor-001", n_normal=100, n_anomalous=1000, metric="current",
                       value=None, interval_s=10, start_ts=1700000000, seed=0, spread=None):
    """A thing reporting nominal samples, then `value` on `metric` for n_anomalous samples in a row
    (the other metrics stay nominal). `spread` narrows the nominal draw of `metric` to
    centre +- spread, so a zscore baseline is tight (default: the full nominal range)."""
    rng = random.Random(seed)
    value = ANOMALY[metric] if value is None else value
    lo, hi = NOMINAL[metric]
    if spread is not None:
        mid = (lo + hi) / 2
        lo, hi = mid - spread, mid + spread
    for i in range(n_normal + n_anomalous):
        s = nominal_sample(rng)
        s[metric] = value if i >= n_normal else rng.uniform(lo, hi)
        yield {"ts": start_ts + i * interval_s, "thing": thing, "raw": {m: round(s[m], 2) for m in METRICS}}


def load_skus():
    return json.loads((DATA / "skus.json").read_text())


def sku(name):
    skus = load_skus()
    if name not in skus:
        raise EdgeshadowError(f"unknown SKU {name!r} (known: {', '.join(sorted(skus))})")
    return skus[name]


def write_jsonl(records, path):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")


if __name__ == "__main__":  # regenerates the bundled sample
    write_jsonl(generate(21, 60, seed=2, anomaly_probability=0.1), DATA / "samples" / "grid-21x60.jsonl")
