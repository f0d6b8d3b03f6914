# AWS IoT Device Shadow documents: the reported state, AWS's limits, and desired-state deltas.
# Metrics stay flat numbers at state.reported.<metric> beside the device's `timestamp`, so rules
# like `SELECT state.reported.current FROM '$aws/things/+/shadow/update'` keep working.
import io
import json

from edge import VERSION, round_half_up

MAX_STATE_BYTES = 8192   # desired + reported, metadata excluded
MAX_DEPTH = 6            # levels inside the desired or reported section
# Optional fields, dropped first to last when the document would break a limit: provenance, then
# any other extra the caller added, then these. Metrics and timestamp are never dropped.
OPTIONAL = ("spool", "diagnoses", "status", "alerts", "config_version", "fw")


class _Size(io.IOBase):
    """A stream that only counts: the size of a document as JSON, without the text in RAM."""
    n = 0

    def write(self, s):
        self.n += len(s)
        return len(s)


def json_size(obj):
    """Bytes of `obj` as compact JSON (as AWS counts a shadow document), without building it."""
    c = _Size()
    json.dump(obj, c, separators=(",", ":"))
    return c.n


def reported_state(cfg, result, extra=None):
    """The reported section for one pipeline result (edge.pipeline.Device.process)."""
    r = {}
    for m, v in result["values"].items():
        r[m] = v
    r["timestamp"] = int(result["ts"])
    # AWS merges an object in the reported state key by key and keeps what an update leaves out.
    # So while any read fails, status names every metric (null: read fine); once none fails it
    # is null, which deletes it: a recovered sensor does not stay failed in the shadow, even
    # across a reboot (nothing to remember).
    statuses = result.get("status", {})
    status = None
    if any(s != "ok" for s in statuses.values()):
        status = dict((m, None) for m in result["values"])
        for m, s in statuses.items():
            status[m] = None if s == "ok" else s
    r["status"] = status
    r["alerts"] = [{"metric": a["metric"], "rule": a["rule"], "severity": a["severity"], "since": a["since"]}
                   for a in result.get("alerts", ()) if a["state"] != "cleared"]
    r["diagnoses"] = [{"name": d["name"], "confidence": round_half_up(d["confidence"], 100)}
                      for d in result.get("diagnoses", ())]
    r["config_version"] = cfg.get("version", 0)
    r["fw"] = VERSION
    if extra:
        for k in extra:
            r[k] = extra[k]
    return r


def depth(o):
    """Levels of nesting: a scalar is 0, {} or [] is 1, {"a": {}} is 2."""
    t = type(o)
    if t is dict:
        return 1 + max([depth(v) for v in o.values()] or [0])
    if t is list:
        return 1 + max([depth(v) for v in o] or [0])
    return 0


def trim(reported):
    """(reported, dropped count) within AWS's limits: optional fields too deep, or needed to fit
    8 KB, are dropped on purpose and counted; ValueError if even the metrics alone do not fit.
    Trimmed in place (the caller's fresh dict): a copy of a 20-key dict per report was one more
    allocation for a fragmented 80 KB heap to refuse."""
    rep = reported
    dropped = 0
    for k in list(rep):
        if depth(rep[k]) >= MAX_DEPTH:  # the reported object itself is the first level
            del rep[k]
            dropped += 1
    extras = [k for k in rep if k not in OPTIONAL and depth(rep[k]) > 0]  # metrics are flat
    extras.sort(key=lambda k: k != "provenance")
    order = extras + [k for k in OPTIONAL if k in rep]
    while json_size({"reported": rep}) > MAX_STATE_BYTES:
        if not order:
            raise ValueError("state: %d bytes without optional fields, AWS allows %d"
                             % (json_size({"reported": rep}), MAX_STATE_BYTES))
        del rep[order.pop(0)]
        dropped += 1
    return rep, dropped

