# Physical and practical bounds of the config's numbers, and usability checks of its paths, host
# names and topic prefixes. A value of the right type can still break a board (interval_s 1e306
# overflows the sampler, spool.dir "/config.json" stops the next boot, telemetry_prefix "#" is
# refused by every broker): such a config or delta is rejected naming the field. The tables are
# data, read by edge.config.validate on the device (boot, every delta) and on the host alike.
# `watchdog_s`'s lower bound depends on interval_s and is edge.config's.
MAX_ABS = 1e9   # any other number in a calibration stage, report filter or rule: |x| <= MAX_ABS

# config path -> (lo, hi): numbers outside are refused. lo None: the type check's own minimum
# (edge.config / edge.schema) is the lower bound, reported there once.
NUMBERS = {
    "interval_s": (None, 86400),        # a day; int(interval_s * 1000) must stay a sane int
    "watchdog_s": (None, 172805),       # 2 x the longest interval + 5 (edge.config's lower
                                        # bound); machine.WDT takes ms: stays below 2^31
    "mqtt.batch_max": (None, 100),      # AWS: 100 unacknowledged QoS1 per connection
    "spool.max_bytes": (4096, 1048576), # a few records at least; at most 1 MB of the flash
}
# (section, stage/filter/rule type or "*", parameter) -> (lo, hi), before the MAX_ABS default;
# lo None as above (every one of these has a type check with its minimum)
PARAMS = {
    ("calibration", "round", "decimals"): (None, 6),   # float32 has about 7 significant digits
    ("calibration", "mean", "window"): (None, 64),     # a window is a list in RAM
    ("calibration", "median", "window"): (None, 64),
    ("rules", "stuck", "samples"): (None, 10000),
    ("rules", "sensor_fault", "samples"): (None, 10000),
    ("rules", "zscore", "learn"): (None, 100000),
    ("rules", "*", "debounce"): (None, 10000),
    ("rules", "*", "clear_after"): (None, 10000),
    ("report", "*", "heartbeat_s"): (None, 604800),    # a week
    ("report", "*", "throttle_s"): (None, 604800),
}
# config path -> kind of string
HOST, PREFIX, FILE, DIR = "host", "prefix", "file", "dir"
STRINGS = {"mqtt.endpoint": HOST, "ntp.host": HOST, "mqtt.telemetry_prefix": PREFIX,
           "mqtt.ca": FILE, "mqtt.cert": FILE, "mqtt.key": FILE, "spool.dir": DIR}
# Top-level names of the board's flash that the spool folder must not take over.
RESERVED_TOP = ("certs", "edge", "net", "drivers", "lib", "spool.tmp")
_FILE_SUFFIXES = (".py", ".mpy", ".json", ".der", ".tmp")
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_WORD = _LOWER + _LOWER.upper() + "0123456789_-"
_MSG = {HOST: "must be a host name (1 to 253 characters of A-Z a-z 0-9 . -)",
        PREFIX: "must be 1 to 3 topic levels of A-Z a-z 0-9 _ - joined by / (no wildcards, no $)",
        FILE: "must be an absolute path of at most 128 characters (A-Z a-z 0-9 _ - . in each part)",
        DIR: "must be a folder of its own, like /spool (not / and not a firmware, certs or config path)"}


def _get(cfg, path):
    d = cfg
    for k in path.split("."):
        if type(d) is not dict or k not in d:
            return None
        d = d[k]
    return d


def _num(x):
    t = type(x)
    return t is int or t is float and x == x and x - x == 0.0


def _word(s, extra=""):
    if not s:
        return False
    for ch in s:
        if ch not in _WORD and ch not in extra:
            return False
    return True


def string_ok(kind, s):
    if type(s) is not str:
        return True  # a type error: edge.config reports it
    if kind == HOST:
        if not 1 <= len(s) <= 253 or not _word(s, "."):
            return False
        for label in s.split("."):
            if not label or len(label) > 63 or label[0] == "-" or "_" in label:
                return False
        return True
    if kind == PREFIX:
        levels = s.split("/")
        return len(s) <= 64 and len(levels) <= 3 and all(_word(v) for v in levels)
    parts = s.split("/")
    if len(s) > 128 or len(parts) < 2 or parts[0] != "":
        return False
    for part in parts[1:]:
        if part in (".", "..") or not _word(part, "."):
            return False
    if kind == DIR:
        if parts[1] in RESERVED_TOP:
            return False
        for part in parts[1:]:
            for suf in _FILE_SUFFIXES:
                if part.endswith(suf):
                    return False
    return True


def _out(path, b, v, p):
    lo, hi = b
    if _num(v) and (v > hi or lo is not None and v < lo):
        if lo is None:
            p.append("%s: must be at most %s, got %r" % (path, hi, v))
        else:
            p.append("%s: must be between %s and %s, got %r" % (path, lo, hi, v))


def _check_params(items, section, path, p):
    if type(items) is not list:
        return
    for i, it in enumerate(items):
        if type(it) is not dict:
            continue
        t = it.get("type")
        for k in it:
            v = it[k]
            where = "%s[%d].%s" % (path, i, k)
            b = PARAMS.get((section, t, k)) or PARAMS.get((section, "*", k))
            if b is not None:
                _out(where, b, v, p)
            elif not _small(v):
                p.append("%s: numbers must be within +-%g" % (where, MAX_ABS))


def _small(v):
    if _num(v):
        return -MAX_ABS <= v <= MAX_ABS
    if type(v) is list:
        for x in v:
            if not _small(x):
                return False
    return True


def _nbytes(s):
    try:
        return len(s.encode())
    except UnicodeError:
        return 0  # reported by bad_text


def _check_wifi(w, p):
    if type(w) is not dict:
        return
    s, pw = w.get("ssid"), w.get("password")
    if type(s) is str and _nbytes(s) > 32:
        p.append("wifi.ssid: at most 32 bytes (802.11), got %d" % _nbytes(s))
    if type(pw) is str and _nbytes(pw) > 64:
        p.append("wifi.password: at most 64 bytes (WPA2), got %d" % _nbytes(pw))


def check(cfg, p):
    """Append "path: message" for every value of cfg outside its bounds (types are not checked)."""
    bad = bad_text(cfg, "")
    if bad is not None:
        p.append("%s: not valid Unicode text (a lone surrogate escape)" % (bad[1:] or "(config)"))
    for path in NUMBERS:
        _out(path, NUMBERS[path], _get(cfg, path), p)
    for path in STRINGS:
        v = _get(cfg, path)
        if v is not None and not string_ok(STRINGS[path], v):
            p.append("%s: %s, got %r" % (path, _MSG[STRINGS[path]], v[:80] if type(v) is str else v))
    _check_wifi(cfg.get("wifi"), p)
    sku = cfg.get("sku")
    r = sku.get("ratings") if type(sku) is dict else None
    if type(r) is dict:
        for m in sorted(r):
            if _num(r[m]) and not -MAX_ABS <= r[m] <= MAX_ABS:
                p.append("sku.ratings.%s: numbers must be within +-%g" % (m, MAX_ABS))
    metrics = cfg.get("metrics")
    if type(metrics) is dict:
        for name in sorted(metrics):
            m = metrics[name]
            if type(m) is dict:
                base = "metrics.%s." % name
                _check_params(m.get("calibration"), "calibration", base + "calibration", p)
                _check_params(m.get("report"), "report", base + "report", p)
    _check_params(cfg.get("rules"), "rules", "rules", p)


def bad_text(o, path="state"):
    """The path of the first key or string in o that is not valid Unicode text (a lone surrogate,
    such as half of a \\ud83d\\ude00 escape, which MicroPython's json turns into invalid UTF-8), or None."""
    t = type(o)
    if t is str:
        try:
            b = o.encode()
        except UnicodeError:  # CPython: a lone surrogate
            return path
        i = b.find(b"\xed")
        while i >= 0:
            if i + 1 < len(b) and b[i + 1] >= 0xA0:  # UTF-8 of U+D800..U+DFFF
                return path
            i = b.find(b"\xed", i + 1)
        return None
    if t is dict:
        for k in o:
            bad = bad_text(k, path) or bad_text(o[k], "%s.%s" % (path, k))
            if bad:
                return bad
    elif t is list:
        for i, v in enumerate(o):
            bad = bad_text(v, "%s[%d]" % (path, i))
            if bad:
                return bad
    return None
