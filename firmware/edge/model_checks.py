# Config checks of a "model" rule (edge.model), imported by edge.checks only when a config has one.
MODEL_KEYS = ("scale", "inputs", "daily", "w", "frac", "sd", "shift", "rough", "frozen", "load", "excess",
              "warm_s")


def _is_int(x, lo):
    return type(x) is int and x >= lo


def _pair(x):
    return type(x) is list and len(x) == 2 and _is_int(x[0], 1) and _is_int(x[1], 0) and x[1] <= x[0]


def validate_model(c, metrics, p, problems, common):
    """Problems of one model rule (edge.model; path p, e.g. "rules[4]"); `metrics` the config's."""
    for k in sorted(c):
        if k not in MODEL_KEYS and k not in common:
            problems.append("%s.%s: unknown parameter (known: %s)" % (p, k, ", ".join(sorted(MODEL_KEYS))))
    for k in ("scale", "inputs", "w", "sd", "shift", "rough"):
        if k not in c:
            problems.append("%s.%s: required" % (p, k))
    s = c.get("scale", 1)
    if not (_is_int(s, 1) and "%d" % s in ("1", "10", "100", "1000", "10000")):
        problems.append("%s.scale: must be 1, 10, 100, 1000 or 10000 (steps per unit)" % p)
    ins = c.get("inputs", [])
    n = 0
    if type(ins) is not list:
        problems.append("%s.inputs: must be a list of [metric, scale, power, tau_s]" % p)
    else:
        n = len(ins)
        for i, it in enumerate(ins):
            q = "%s.inputs[%d]" % (p, i)
            if (type(it) is not list or len(it) != 4 or not _is_int(it[1], 1) or it[2] not in (1, 2)
                    or type(it[2]) is not int or not _is_int(it[3], 0)):
                problems.append("%s: must be [metric, scale >= 1, power 1 or 2, tau_s >= 0]" % q)
            elif it[0] not in metrics or it[0] == c.get("metric"):
                problems.append("%s: %r is not another metric of this config" % (q, it[0]))
    daily = c.get("daily", False)
    if type(daily) is not bool:
        problems.append("%s.daily: must be true or false" % p)
        daily = False
    w = c.get("w", [])
    want = 1 + n + (2 if daily else 0)
    if type(w) is not list or len(w) != want or not all(type(x) is int for x in w):
        problems.append("%s.w: must be %d integer weights (1 + inputs%s)" % (p, want, " + 2 daily" if daily else ""))
    if "frac" in c and not (type(c["frac"]) is int and 0 <= c["frac"] <= 40):
        problems.append("%s.frac: must be an integer 0..40 (fraction bits of the weights)" % p)
    if "sd" in c and not _is_int(c["sd"], 1):
        problems.append("%s.sd: must be an integer >= 1 (steps)" % p)
    for k in ("shift", "rough"):
        if k in c and not _pair(c[k]):
            problems.append("%s.%s: must be [on, off] integers with on >= 1 and 0 <= off <= on" % (p, k))
    if "warm_s" in c and not _is_int(c["warm_s"], 0):
        problems.append("%s.warm_s: must be an integer >= 0 (seconds)" % p)
    if "frozen" in c and not (_is_int(c["frozen"], 0) and c["frozen"] != 1):
        problems.append("%s.frozen: must be an integer >= 2 (samples), or 0 (off)" % p)
    ld = c.get("load")
    if ld is not None and not (type(ld) is list and len(ld) == 2 and type(ld[0]) is int
                               and 0 <= ld[0] < n and type(ld[1]) is int):
        problems.append("%s.load: must be [input index, mean contribution in steps] integers" % p)
    if "excess" in c and not (type(c["excess"]) is str and c["excess"]):
        problems.append("%s.excess: must be a non-empty string (the fault an amplified load effect means)" % p)
