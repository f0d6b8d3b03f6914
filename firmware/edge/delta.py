# A desired-state delta applied to the device config as a whole or not at all. Imported only
# while a delta is checked (app.py unloads it, with edge.config, afterwards: code in RAM costs).
from edge import config
from edge.shadow import MAX_DEPTH, MAX_STATE_BYTES, depth, json_size


def apply_delta(cfg, msg):
    """(new config, None) or (None, problems) for an update/delta message {"state": {...}, ...}.
    Nothing is applied when anything is wrong; paths are config paths (what desired state sets)."""
    if type(msg) is not dict or type(msg.get("state")) is not dict:
        return None, ["state: the delta must hold a \"state\" object"]
    d = msg["state"]
    p = []
    if depth(d) > MAX_DEPTH:
        p.append("state: nested %d levels deep, AWS allows %d" % (depth(d), MAX_DEPTH))
    size = json_size(d)
    if size > MAX_STATE_BYTES:
        p.append("state: %d bytes, AWS allows %d" % (size, MAX_STATE_BYTES))
    for k in ("thing", "version"):
        if k in d:
            p.append("%s: set by the device, not by a delta" % k)
    known = cfg.get("metrics") or {}
    if "metrics" in d:
        if type(d["metrics"]) is not dict:
            p.append("metrics: must be an object")
        else:
            for m in sorted(d["metrics"]):
                if m not in known:
                    p.append("metrics.%s: unknown metric (known: %s)" % (m, ", ".join(sorted(known))))
    if p:
        return None, p
    new = config.merge(cfg, d)
    new["version"] = cfg.get("version", 0) + 1
    problems = config.validate(new, changed=d)
    if problems:
        return None, problems
    return new, None

