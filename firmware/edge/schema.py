# Tiny parameter schemas shared by the registries (calibration stages, report filters, rules).
# A schema is a dict name -> (kind, required); check() appends "path: message" problems.
NUM = "num"        # int or float (not bool)
POS = "pos"        # number > 0
NONNEG = "nonneg"  # number >= 0
INT = "int"        # int >= 1
BOOL = "bool"
STR = "str"
NUMS = "nums"      # non-empty list of numbers
POINTS = "points"  # list of >= 2 [raw, ref] pairs, raw strictly increasing

_MSG = {NUM: "must be a number", POS: "must be a number > 0", NONNEG: "must be a number >= 0",
        INT: "must be an integer >= 1", BOOL: "must be true or false", STR: "must be a string",
        NUMS: "must be a non-empty list of numbers",
        POINTS: "must be a list of at least 2 [raw, reference] pairs with raw strictly increasing"}


def is_num(x):
    t = type(x)
    return t is int or t is float and x == x and x - x == 0.0  # finite


def _ok(kind, v):
    if kind == NUM:
        return is_num(v)
    if kind == POS:
        return is_num(v) and v > 0
    if kind == NONNEG:
        return is_num(v) and v >= 0
    if kind == INT:
        return type(v) is int and v >= 1
    if kind == INT0:
        return type(v) is int and v >= 0
    if kind == FRACTION:
        return is_num(v) and 0 < v <= 1
    if kind == BOOL:
        return type(v) is bool
    if kind == STR:
        return type(v) is str
    if kind == NUMS:
        return type(v) is list and len(v) > 0 and all(is_num(x) for x in v)
    if kind == POINTS:
        if type(v) is not list or len(v) < 2:
            return False
        last = None
        for p in v:
            if type(p) is not list or len(p) != 2 or not is_num(p[0]) or not is_num(p[1]):
                return False
            if last is not None and p[0] <= last:
                return False
            last = p[0]
        return True
    return False


# Bounds (issue 13): no parameter number beyond +-MAX_ABS (1e308 x 1e308 is inf in telemetry), and
# these parameters at most (RAM for windows, float32's ~7 digits, a week for timers).
MAX_ABS = 1e9
LIMITS = {"decimals": 6, "window": 64, "samples": 10000, "learn": 100000, "debounce": 10000,
          "clear_after": 10000, "heartbeat_s": 604800, "throttle_s": 604800}


def too_big(name, v):
    """A "must be ..." message when v, of the right type, is beyond its bound; else None."""
    if name in LIMITS:
        if is_num(v) and v > LIMITS[name]:
            return "must be at most %s, got %r" % (LIMITS[name], v)
    elif is_num(v) and not -MAX_ABS <= v <= MAX_ABS or type(v) is list and not all(
            too_big(name, x) is None for x in v):
        return "numbers must be within +-%g" % MAX_ABS
    return None


def check(schema, d, path, problems, common=()):
    """Check d (a dict) against schema; keys in `common` are checked by the caller."""
    for name in schema:
        kind, required = schema[name]
        if name not in d:
            if required:
                problems.append("%s.%s: required" % (path, name))
        elif not _ok(kind, d[name]):
            problems.append("%s.%s: %s" % (path, name, _MSG[kind]))
        else:
            big = too_big(name, d[name])
            if big:
                problems.append("%s.%s: %s" % (path, name, big))
    for name in sorted(d):
        if name != "type" and name not in schema and name not in common:
            known = sorted(k for k in schema)
            problems.append("%s.%s: unknown parameter (known: %s)" % (path, name, ", ".join(known) or "none"))
INT0 = "int0"          # int >= 0
FRACTION = "fraction"  # 0 < x <= 1
_MSG[INT0] = "must be an integer >= 0"
_MSG[FRACTION] = "must be a number in (0, 1]"


def typed_items(items, path, known, what, problems):
    """Yields (path, type, item) for the items of a list of {"type": ...} objects whose type is in
    `known`, reporting a non-list, a non-object item and an unknown type in item order."""
    if type(items) is not list:
        problems.append("%s: must be a list of %ss" % (path, what))
        return
    for i, it in enumerate(items):
        p = "%s[%d]" % (path, i)
        if type(it) is not dict:
            problems.append("%s: must be an object with a \"type\"" % p)
        elif it.get("type") not in known:
            problems.append("%s.type: unknown %s %r (known: %s)"
                            % (p, what, it.get("type"), ", ".join(sorted(known))))
        else:
            yield p, it["type"], it
