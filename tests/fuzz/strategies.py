"""Hypothesis strategies for what a board and the host read from outside."""
import json
import struct

from hypothesis import strategies as st

THING = "fuzz-001"
BASE = f"$aws/things/{THING}/shadow/"

# values that have broken boards before, mixed into generated JSON
NASTY_NUMBERS = st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 32 + 5, 2 ** 62, 2 ** 64, 10 ** 30, 1e306, -1e306,
                                 1e-320, 0.5, 3.4e38, 1e308, 255, 65535, 65536, 86400, 86401, 4095, 100])
NASTY_STRINGS = st.sampled_from(["", "#", "+", "a/#", "$aws", "/", "/config.json", "/certs", "..",
                                 "/spool", "x" * 300, "\ud83d", "\u00e9", "dt", "localhost", "null",
                                 "/edge/x", "a b", "\x00"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), NASTY_NUMBERS,
                    st.floats(allow_nan=False, allow_infinity=False), NASTY_STRINGS, st.text(max_size=20))
CONFIG_KEYS = ["interval_s", "watchdog_s", "version", "thing", "metrics", "rules", "mqtt", "spool",
               "wifi", "ntp", "sku", "diagnoses", "board", "voltage", "current", "port", "dir",
               "max_bytes", "telemetry_prefix", "endpoint", "batch_max", "keepalive_s", "calibration",
               "report", "type", "value", "decimals", "window", "min", "max", "ssid", "password",
               "ratings", "heartbeat_s", "deadband", "gain", "offset", "points", "metric", "severity"]
KEYS = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=8))


def json_values(max_leaves=20):
    return st.recursive(SCALARS, lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(KEYS, kids, max_size=5)), max_leaves=max_leaves)


STAGES = st.fixed_dictionaries({"type": st.sampled_from(
    ["offset", "multiply", "linear", "two_point", "polynomial", "table", "clamp", "round",
     "kelvin_to_celsius", "ema", "mean", "median", "filter_out", "bogus"])},
    optional={"value": SCALARS, "gain": SCALARS, "offset": SCALARS, "decimals": SCALARS, "window": SCALARS,
              "alpha": SCALARS, "min": SCALARS, "max": SCALARS,
              "coefficients": st.lists(SCALARS, max_size=4),
              "points": st.lists(st.lists(SCALARS, min_size=2, max_size=2), max_size=4)})
RULES = st.fixed_dictionaries({"metric": st.sampled_from(["voltage", "current", "nope"]),
                               "type": st.sampled_from(["range", "rating", "rate", "stuck", "zscore",
                                                        "sensor_fault", "bogus"])},
                              optional={"min": SCALARS, "max": SCALARS, "samples": SCALARS, "learn": SCALARS,
                                        "threshold": SCALARS, "max_per_s": SCALARS, "debounce": SCALARS,
                                        "clear_after": SCALARS, "severity": SCALARS, "name": SCALARS,
                                        "min_pct": SCALARS, "max_pct": SCALARS, "tolerance": SCALARS})
SECTIONS = st.fixed_dictionaries({}, optional={
    "interval_s": SCALARS, "watchdog_s": SCALARS, "version": SCALARS,
    "mqtt": st.fixed_dictionaries({}, optional={k: SCALARS for k in (
        "endpoint", "port", "keepalive_s", "clean_session", "telemetry_prefix", "batch_max", "ca", "cert", "key")}),
    "spool": st.fixed_dictionaries({}, optional={"max_bytes": SCALARS, "dir": SCALARS}),
    "wifi": st.fixed_dictionaries({}, optional={"ssid": SCALARS, "password": SCALARS}),
    "ntp": st.fixed_dictionaries({}, optional={"host": SCALARS}),
    "sku": st.fixed_dictionaries({}, optional={"ratings": st.dictionaries(
        st.sampled_from(["voltage", "current", "x"]), SCALARS, max_size=2)}),
    "rules": st.lists(RULES, max_size=3),
    "metrics": st.dictionaries(st.sampled_from(["voltage", "current", "bogus"]),
                               st.fixed_dictionaries({}, optional={"calibration": st.lists(STAGES, max_size=3),
                                                                   "report": json_values(4), "unit": SCALARS}),
                               max_size=2),
})
# a desired-state delta: mostly config-shaped, sometimes anything at all
DELTA_STATES = st.one_of(SECTIONS, SECTIONS, SECTIONS, st.dictionaries(KEYS, json_values(), max_size=4))


def _varlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def packet(first, body, length=None):
    return bytes([first]) + _varlen(len(body) if length is None else length) + body


def publish(topic, payload, qos=1, pid=7, flags=0):
    t = topic.encode("utf-8", "surrogatepass")
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", pid) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | flags, body)


def _json_bytes(v):
    try:
        return json.dumps(v).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return b"{}"


SHADOW_DOCS = st.one_of(
    st.builds(lambda s, v: _json_bytes({"state": s, "version": v}), DELTA_STATES, SCALARS),
    st.builds(lambda s, v, t: _json_bytes({"state": {"desired": s, "delta": s}, "version": v, "clientToken": t}),
              DELTA_STATES, SCALARS, SCALARS),
    st.builds(_json_bytes, json_values()),
    st.binary(max_size=64),
    st.sampled_from([b"NaN", b"[" * 5000, b'{"state": {"a": NaN}, "version": 3}', b'{"version": 1e400}',
                     b'{"state": {"interval_s": 1e306}, "version": 2}', b"\xff\xfe", b""]),
)
TOPICS = st.one_of(st.sampled_from([BASE + s for s in ("update/delta", "get/accepted", "get/rejected",
                                                         "update/accepted", "update/rejected")]),
                   st.text(max_size=30), st.just("\ud83d"))
PUBLISHES = st.builds(publish, TOPICS, SHADOW_DOCS, st.sampled_from([0, 1, 1, 2, 3]),
                      st.integers(0, 65535), st.sampled_from([0, 0, 1, 8]))
OTHER_PACKETS = st.one_of(
    st.builds(lambda pid: packet(0x40, struct.pack("!H", pid)), st.integers(0, 65535)),
    st.builds(lambda b: packet(0x90, b), st.binary(max_size=6)),
    st.builds(lambda b: packet(0xB0, b), st.binary(max_size=4)),
    st.just(b"\xd0\x00"),
    st.builds(lambda f, b: packet(f, b), st.integers(0, 255), st.binary(max_size=16)),
    st.builds(lambda f, n, b: packet(f, b, n), st.integers(0, 255), st.integers(0, 2 ** 28 - 1), st.binary(max_size=8)),
    st.binary(max_size=32),
)
PACKET = st.one_of(PUBLISHES, PUBLISHES, OTHER_PACKETS)


@st.composite
def mutated(draw, base):
    """A valid stream of packets with a few bytes flipped, cut, inserted or deleted."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[i]
    return bytes(data)


STREAMS = st.one_of(st.builds(b"".join, st.lists(PACKET, min_size=1, max_size=4)),
                    mutated(st.builds(b"".join, st.lists(PUBLISHES, min_size=1, max_size=3))))
