# Device config: built-in defaults, overlaid by the board's defaults, overlaid by the device's
# config, then validated once. Every problem is reported with its path ("rules[2].min: must be a
# number"), not only the first. Dicts merge key by key; lists and values replace.
from edge import schema as S

DEFAULTS = {
    "version": 0,
    "board": None,
    "sku": None,
    "interval_s": 10,
    "rules": [],
    "diagnoses": None,  # None: the grid-sensor default set (edge.diagnosis)
    "mqtt": {"endpoint": None, "port": 8883, "keepalive_s": 60, "clean_session": True,
             "telemetry_prefix": "dt", "batch_max": 20,
             "ca": "/certs/root-ca.der", "cert": "/certs/device.der", "key": "/certs/device.key.der"},
    "wifi": {"ssid": "", "password": ""},
    "spool": {"max_bytes": 65536, "dir": "/spool"},
    "ntp": {"host": "pool.ntp.org"},
    "watchdog_s": 45,
}
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:-"
_SECTIONS = {  # section -> {key: (kind, nullable)}
    "mqtt": {"endpoint": (S.STR, True), "port": ("port", False), "keepalive_s": ("keepalive", False),
             "clean_session": (S.BOOL, False), "telemetry_prefix": (S.STR, False),
             "batch_max": (S.INT, False), "ca": (S.STR, False), "cert": (S.STR, False), "key": (S.STR, False)},
    "wifi": {"ssid": (S.STR, False), "password": (S.STR, False)},
    "spool": {"max_bytes": (S.INT, False), "dir": (S.STR, False)},
    "ntp": {"host": (S.STR, False)},
}


class ConfigError(ValueError):
    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems

    def __str__(self):
        return "; ".join(self.problems)


def merge(base, over):
    """A new dict: `over` laid on `base`; nested dicts merge, everything else replaces."""
    out = dict(base)
    for k in over:
        v = over[k]
        if type(v) is dict and type(out.get(k)) is dict:
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load(device_cfg, board_defaults=None):
    """Layer built-in defaults, board defaults (a partial device config) and the device config;
    raise ConfigError naming every problem."""
    problems = []
    if type(device_cfg) is not dict:
        raise ConfigError(["(config): must be a JSON object"])
    if board_defaults is not None and type(board_defaults) is not dict:
        raise ConfigError(["(board defaults): must be a JSON object"])
    cfg = merge(DEFAULTS, board_defaults or {})
    cfg = merge(cfg, device_cfg)
    i = cfg.get("interval_s")
    if "watchdog_s" not in device_cfg and "watchdog_s" not in (board_defaults or {}) and S.is_num(i):
        cfg["watchdog_s"] = max(45, 2 * i + 5)  # the default outlasts a handshake and a late sample
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def valid_name(s, max_len=128):
    if type(s) is not str or not 1 <= len(s) <= max_len:
        return False
    for ch in s:
        if ch not in _NAME_CHARS:
            return False
    return True


# What the registry checks (edge.checks: stages, filters, rules, diagnoses) look at.
PIPELINE_KEYS = ("metrics", "rules", "diagnoses", "sku")


def validate(cfg, changed=None):
    """Every problem in cfg as "path: message" (an empty list when it is valid). `changed`: the
    top-level keys a delta changed in an otherwise valid config; the registry checks (and their
    code) are then needed only if it touches the pipeline."""
    p = []
    if type(cfg) is not dict:
        return ["(config): must be a JSON object"]
    for k in sorted(cfg):
        if k not in DEFAULTS and k not in ("thing", "metrics"):
            p.append("%s: unknown key (known: %s)" % (k, ", ".join(sorted(list(DEFAULTS) + ["thing", "metrics"]))))
    if "thing" not in cfg:
        p.append("thing: required")
    elif not valid_name(cfg["thing"]):
        p.append("thing: must be 1 to 128 characters of A-Z a-z 0-9 _ : -")
    v = cfg.get("version", 0)
    if not (type(v) is int and v >= 0):
        p.append("version: must be an integer >= 0")
    b = cfg.get("board")
    if b is not None and type(b) is not str:
        p.append("board: must be a string")
    if not (S.is_num(cfg.get("interval_s", 10)) and cfg.get("interval_s", 10) >= 1):
        p.append("interval_s: must be a number >= 1")
    w = cfg.get("watchdog_s", 45)
    if not (S.is_num(w) and w >= 0):
        p.append("watchdog_s: must be a number >= 0 (0 disables)")
    elif w:
        # A TLS handshake blocks the loop for 1 to 7 s and the watchdog is fed only while the
        # sampler keeps its schedule (two intervals and 5 s): a shorter timeout resets the board
        # in every handshake or slow sample, for good.
        i = cfg.get("interval_s", 10)
        least = max(30, 2 * i + 5) if S.is_num(i) else 30
        if w < least:
            p.append("watchdog_s: %s s is shorter than a TLS handshake or a late sample can take: "
                     "use 0 (off) or at least %s (max(30, 2 x interval_s + 5))" % (w, least))
    if changed is None or any(k in changed for k in PIPELINE_KEYS):
        from edge import checks
        checks.validate_sku(cfg.get("sku"), p)
        checks.validate_metrics(cfg.get("metrics"), p)
        checks.validate_rules(cfg.get("rules", []), cfg, p)
        checks.validate_diagnoses(cfg.get("diagnoses"), cfg, p)
    for sec in _SECTIONS:
        _check_section(sec, cfg.get(sec, {}), p)
    _check_bounds(cfg, p)
    return p


# Bounds (issue 13): a value of the right type can still break a board (interval_s 1e306
# overflows the sampler, spool.dir "/config.json" stops the next boot, telemetry_prefix "#" is
# refused by every broker). Numbers: path -> (lo or None: the type check's, hi). Strings: path ->
# H host name, P topic prefix, F absolute file path, D a folder of its own. Stage, filter and rule
# parameters: edge.schema.LIMITS and MAX_ABS.
BOUNDS = {"interval_s": (None, 86400), "watchdog_s": (None, 172805),  # 2 x 86400 + 5 at most
          "mqtt.batch_max": (None, 100),                                # AWS: 100 QoS1 in flight
          "spool.max_bytes": (4096, 1048576), "wifi.ssid": 32, "wifi.password": 64,  # bytes
          "mqtt.endpoint": "H", "ntp.host": "H", "mqtt.telemetry_prefix": "P",
          "mqtt.ca": "F", "mqtt.cert": "F", "mqtt.key": "F", "spool.dir": "D"}
_KINDS = {"H": "a host name", "P": "1 to 3 topic levels of A-Z a-z 0-9 _ -",
          "F": "an absolute file path", "D": "a folder of its own, like /spool"}
_NOT_SPOOL = ("certs", "edge", "net", "store", "drivers", "ota", "update", "lib")  # firmware, OTA slots  # and no file names (.py .json ...)


def _word(s, extra=""):
    for ch in s:
        if ch not in _NAME_CHARS and ch not in extra or ch == ":":
            return False
    return s != ""


def string_ok(kind, s):
    """s usable as a `kind` (BOUNDS) value."""
    if kind == "H":
        return 0 < len(s) <= 253 and all(_word(x) and x[0] != "-" and "_" not in x for x in s.split("."))
    if kind == "P":
        return len(s) <= 64 and len(s.split("/")) <= 3 and all(_word(x) for x in s.split("/"))
    parts = s.split("/")
    if len(s) > 128 or len(parts) < 2 or parts[0] or not all(_word(x, ".") and x.strip(".") for x in parts[1:]):
        return False
    return kind == "F" or parts[1] not in _NOT_SPOOL and "." not in s


def _check_bounds(cfg, p):
    for path in BOUNDS:
        sec, _, key = path.partition(".")
        v = cfg.get(sec)
        if key:
            v = v.get(key) if type(v) is dict else None
        b = BOUNDS[path]
        if type(b) is tuple:
            if S.is_num(v) and (v > b[1] or b[0] is not None and v < b[0]):
                p.append("%s: must be %s, got %r" % (path, "at most %s" % b[1] if b[0] is None
                                                     else "%s to %s" % b, v))
        elif type(v) is not str:
            pass  # missing, null, or a type error reported above
        elif type(b) is int:
            try:
                n = len(v.encode())
            except UnicodeError:  # a lone surrogate (CPython)
                n = -1
            if n < 0 or n > b:
                p.append("%s: at most %d bytes of valid text, got %r" % (path, b, v[:40]))
        elif not string_ok(b, v):
            p.append("%s: must be %s, got %r" % (path, _KINDS[b], v[:80]))
    r = cfg.get("sku")
    r = r.get("ratings") if type(r) is dict else None
    if type(r) is dict:
        for m in sorted(r):
            if S.too_big(m, r[m]):
                p.append("sku.ratings.%s: %s" % (m, S.too_big(m, r[m])))


def _check_section(sec, d, p):
    if type(d) is not dict:
        p.append("%s: must be an object" % sec)
        return
    spec = _SECTIONS[sec]
    for k in sorted(d):
        if k not in spec:
            p.append("%s.%s: unknown key (known: %s)" % (sec, k, ", ".join(sorted(spec))))
            continue
        kind, nullable = spec[k]
        v = d[k]
        if v is None and nullable:
            continue
        if kind == "port":
            ok, msg = type(v) is int and 1 <= v <= 65535, "must be an integer 1..65535"
        elif kind == "keepalive":
            ok, msg = type(v) is int and 30 <= v <= 1200, "must be an integer 30..1200 (AWS IoT's range)"
        elif kind == S.STR:
            ok, msg = type(v) is str, "must be a string" + (" or null" if nullable else "")
        elif kind == S.BOOL:
            ok, msg = type(v) is bool, "must be true or false"
        else:
            ok, msg = type(v) is int and v >= 1, "must be an integer >= 1"
        if not ok:
            p.append("%s.%s: %s" % (sec, k, msg))
