"""Desired state a person sends to a board: parsed, checked with the firmware's own validator, and
the board's answer awaited.

- `parse_assignments(["interval_s=5", "mqtt.keepalive_s=60", "name=pump"])` builds the desired
  fragment. A value is JSON (`5`, `true`, `null`, `"text"`, `[1, 2]`, `{"a": 1}`); a plain word
  (`pump`, `pool.ntp.org`) is taken as a string because it cannot be read as anything else. A value
  that looks like JSON but does not parse (`{bad`, `[1,`, `1e`, `True`, `NaN`) is refused, naming
  its key: quote a string that starts like JSON (`k='"{text"'`). Dots nest keys; `key=null` removes.
- `check(thing, desired, reported)`: what the board would refuse, found on the host by the
  firmware's validator (firmware/edge/delta.py and edge/config.py, run on CPython) against the
  board's settings as its shadow reports them. The pipeline (metrics, rules, diagnoses, sku) depends
  on the board's whole config, which only the board holds: the board checks that part and
  `wait_for_board` brings its answer back.
- `answer(desired, version, reported)`: the board's answer to shadow version `version` in its
  reported state: ("applied", None), ("rejected", problems), or None (no answer yet). The firmware
  echoes an applied delta's keys and sets `config_error: null`, or reports
  `config_error: {"version": v, "problems": [...]}` for a delta it refused (firmware/app.py on_delta).
"""
import json
import sys
import time

from host_tools import FIRMWARE_DIR
from host_tools.errors import EdgeshadowError

# set by the firmware or its pipeline, or checked only by the board (it needs the whole config)
PIPELINE_KEYS = ("metrics", "rules", "diagnoses", "sku")
# settings whose reported value is the board's config (other reported keys, like "spool", are
# the board's statistics under a config key's name)
ECHOED = ("interval_s", "watchdog_s")
_JSON_START = set('{["-+.0123456789')
_NOT_WORDS = ("true", "false", "null", "none", "nan", "inf", "infinity")


def parse_value(key, raw):
    """A value as JSON, or a plain word as a string; EdgeshadowError naming the key otherwise."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except ValueError as e:
        looks_json = not raw or raw[0] in _JSON_START or raw.strip().lower() in _NOT_WORDS or raw != raw.strip()
        if looks_json:
            reason = str(e).split(":")[0] if raw else "empty value"
            raise EdgeshadowError(f"{key}={raw}: not valid JSON ({reason}); give a JSON value "
                                  f"(5, true, null, \"text\", {{\"a\": 1}}), or quote a string: "
                                  f"{key}='\"{raw}\"'") from None
        return raw


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_assignments(items):
    desired = {}
    for i, item in enumerate(items, 1):
        key, sep, raw = item.partition("=")
        if not sep:
            raise EdgeshadowError(f"assignment {i} ({item!r}) has no '=': write key=value, e.g. interval_s=5")
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise EdgeshadowError(f"assignment {i} ({item!r}) has an empty key: write key=value or a.b=value")
        value = parse_value(key, raw)
        node = desired
        for depth, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise EdgeshadowError(f"assignment {i} ({item!r}): {'.'.join(parts[:depth + 1])} "
                                      "is already set to a value, it cannot also hold keys")
            node = nxt
        if parts[-1] in node and isinstance(node[parts[-1]], dict) != isinstance(value, dict):
            raise EdgeshadowError(f"assignment {i} ({item!r}): {key} is given twice")
        node[parts[-1]] = value
    if not desired:
        raise EdgeshadowError("nothing to set: give at least one key=value")
    return desired


def firmware_modules():
    """The firmware's edge.config and edge.delta, imported on CPython (the one validator)."""
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    from edge import config, delta
    return config, delta


def check(thing, desired, reported=None):
    """Problems ("path: sentence") the board's validator finds in `desired`, before it is sent."""
    config, delta = firmware_modules()
    settings = {k: v for k, v in desired.items() if k not in PIPELINE_KEYS}
    if not settings:
        return []
    base = config.merge(config.DEFAULTS, {"thing": thing})
    for key in ECHOED:  # the settings the board reported (it echoes the deltas it applied)
        value = (reported or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            base[key] = value
    sent = {k: v for k, v in settings.items() if v is not None}  # key=null only leaves desired
    _, problems = delta.apply_delta(base, {"state": sent})
    return [p for p in problems or [] if p.split(":")[0].split(".")[0].split("[")[0] in sent or
            p.startswith("state:")]


def answer(desired, version, reported):
    """("applied", None), ("rejected", problems) or None: the board's answer to `version`."""
    from host_tools.cloud.shadow_store import delta_of
    err = reported.get("config_error")
    if isinstance(err, dict) and isinstance(err.get("version"), int) and err["version"] >= version:
        return "rejected", [str(p) for p in err.get("problems") or []] or ["(no reason given)"]
    wanted = _without_nulls(desired)
    if not delta_of(wanted, reported):
        return "applied", None
    return None


def _without_nulls(d):
    """desired as the board sees it: key=null only removes a key from desired (no delta)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _without_nulls(v)
            if not v:
                continue
        if v is not None:
            out[k] = v
    return out


def wait_for_board(shadow, thing, desired, version, timeout, poll_s=0.25):
    """Poll the shadow up to `timeout` s for the board's answer to shadow version `version`:
    ("applied", reported state), ("rejected", problems) or ("no answer", None)."""
    deadline = time.monotonic() + timeout
    while True:
        reported = shadow.get(thing).get("state", {}).get("reported", {})
        got = answer(desired, version, reported)
        if got is not None:
            return got if got[0] == "rejected" else ("applied", reported)
        if time.monotonic() >= deadline:
            return "no answer", None
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def for_board(desired):
    """Whether the board gets a delta at all: key=null only removes a key from desired."""
    return bool(_without_nulls(desired))
