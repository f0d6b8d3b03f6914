# Shared test data for the edge tests (no tests here): the config, exactly as written.
import json

GRID_JSON = """{"thing": "grid-sensor-001",
 "sku": {"name": "MV-600A", "ratings": {"current": 600}},
 "interval_s": 10,
 "metrics": {
   "voltage":     {"unit": "V", "calibration": []},
   "current":     {"unit": "A", "calibration": [{"type": "linear", "gain": 1.0, "offset": 0.0}]},
   "temperature": {"unit": "C", "calibration": []},
   "humidity":    {"unit": "%", "calibration": []}},
 "rules": [
   {"metric": "voltage", "type": "range", "min": 23000, "max": 25000, "severity": "critical"},
   {"metric": "current", "type": "rating", "max_pct": 100, "severity": "critical"},
   {"metric": "temperature", "type": "range", "min": 30, "max": 100, "severity": "warning"},
   {"metric": "humidity", "type": "range", "min": 20, "max": 80, "severity": "warning"},
   {"metric": "current", "type": "zscore", "learn": 100, "threshold": 4.0, "severity": "info"}]}"""

NOMINAL = {"voltage": 24000, "current": 300, "temperature": 60, "humidity": 50}


def grid_cfg():
    """A fresh copy of the issue's config (tests may change it)."""
    return json.loads(GRID_JSON)


def sample(**over):
    s = dict(NOMINAL)
    for k in over:
        s[k] = over[k]
    return s
