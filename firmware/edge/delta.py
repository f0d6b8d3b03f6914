# A desired-state delta applied to the device config as a whole or not at all. Imported only
# while a delta is checked (app.py unloads it, with edge.config, afterwards: code in RAM costs).
from edge import config
from edge.shadow import MAX_DEPTH, MAX_STATE_BYTES, depth, _dumps_compact


def apply_delta(cfg, msg):
    """(new config, None) or (None, problems) for an update/delta message {"state": {...}, ...}.
    Nothing is applied when anything is wrong; paths are config paths (what desired state sets)."""
    if type(msg) is not dict or type(msg.get("state")) is not dict:
        return None, ["state: the delta must hold a \"state\" object"]
    d = msg["state"]
    p = []
    if depth(d) > MAX_DEPTH:
        p.append("state: nested %d levels deep, AWS allows %d" % (depth(d), MAX_DEPTH))
    size = len(_dumps_compact(d))
    if size > MAX_STATE_BYTES:
        p.append("state: %d bytes, AWS allows %d" % (size, MAX_STATE_BYTES))
    bad = bad_text(d, "")
    if bad is not None:
        p.append("%s: not valid Unicode text (a lone surrogate escape)" % (bad[1:] or "state"))
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


def bad_text(o, path):
    """The path of the first key or string in o that is not valid Unicode text, or None: a lone
    surrogate escape (CPython), or the invalid UTF-8 that MicroPython's json makes of a
    \\uD83D\\uDE00 pair, which the shadow service then refuses (415)."""
    if type(o) is str:
        try:
            b = o.encode()
        except UnicodeError:
            return path
        i = b.find(b"\xed")
        while i >= 0:
            if i + 1 < len(b) and b[i + 1] >= 0xA0:  # the UTF-8 form of U+D800..U+DFFF
                return path
            i = b.find(b"\xed", i + 1)
    elif type(o) is dict:
        for k in o:
            bad = bad_text(k, path) or bad_text(o[k], "%s.%s" % (path, k))
            if bad is not None:
                return bad
    elif type(o) is list:
        for i, v in enumerate(o):
            bad = bad_text(v, "%s[%d]" % (path, i))
            if bad is not None:
                return bad
    return None
