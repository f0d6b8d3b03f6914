# Replay: the pipeline over recorded samples, JSONL in and JSONL out. The same module runs under
# CPython (host_tools.replay) and inside MicroPython:
#   micropython firmware/edge/replay.py CONFIG.json IN.jsonl [OUT.jsonl]   (MICROPYPATH=firmware)
# Input lines: {"ts": <unix s>, "thing": "<name>", "raw": {"<metric>": <number|null>}, "status": {...}?}
# Output lines: {"ts", "thing", "values", "alerts", "diagnoses"}; several things are tracked apart.
# A bad line goes to stderr as "line N: path: message" and is skipped.
# Exit codes: 0 all lines good, 1 some lines bad, 2 usage, 3 unreadable or invalid config.
import json
import sys

from edge import config as _config, schema as S, status as _st
from edge.pipeline import Device
from edge.jsonl import dumps

_LINE_KEYS = ("raw", "status", "thing", "ts")
_ALERT_KEYS = ("metric", "rule", "severity", "state", "value", "since", "reason")


def check_record(rec, metrics, last_ts):
    """Problems of one input record ("path: message"), empty when it is good."""
    if type(rec) is not dict:
        return ["line must be a JSON object"]
    p = []
    for k in sorted(rec):
        if k not in _LINE_KEYS:
            p.append("%s: unknown key (known: %s)" % (k, ", ".join(_LINE_KEYS)))
    ts = rec.get("ts")
    thing = rec.get("thing")
    if "ts" not in rec:
        p.append("ts: required")
    elif not S.is_num(ts):
        p.append("ts: must be a number (unix seconds)")
    if "thing" not in rec:
        p.append("thing: required")
    elif not _config.valid_name(thing):
        p.append("thing: must be 1 to 128 characters of A-Z a-z 0-9 _ : -")
    elif S.is_num(ts) and thing in last_ts and ts < last_ts[thing]:
        p.append("ts: %s is before the previous sample of %s (%s)" % (ts, thing, last_ts[thing]))
    raw = rec.get("raw")
    if "raw" not in rec:
        p.append("raw: required")
    elif type(raw) is not dict:
        p.append("raw: must be an object of metric: number or null")
    else:
        for m in sorted(raw):
            if m not in metrics:
                p.append("raw.%s: not a metric of the config (known: %s)" % (m, ", ".join(metrics)))
            elif raw[m] is not None and not S.is_num(raw[m]):
                p.append("raw.%s: must be a finite number or null" % m)
    st = rec.get("status")
    if st is not None:
        if type(st) is not dict:
            p.append("status: must be an object of metric: read status")
        else:
            for m in sorted(st):
                if m not in metrics:
                    p.append("status.%s: not a metric of the config" % m)
                elif st[m] not in _st.ALL:
                    p.append("status.%s: unknown status (known: %s)" % (m, ", ".join(_st.ALL)))
    return p


def _one_line(s):
    """s with control characters and line separators escaped: one message, one line, whatever
    the input's keys hold (a key may be "\n")."""
    out = []
    for c in s:
        out.append(c if c >= " " and c not in "\x7f\x85\u2028\u2029" else "\\x%02x" % (ord(c) & 0xFF))
    return "".join(out)


def output_record(res):
    alerts = []
    for a in res["alerts"]:
        alerts.append({k: a[k] for k in _ALERT_KEYS})
    return {"ts": res["ts"], "thing": res["thing"], "values": res["values"],
            "alerts": alerts, "diagnoses": res["diagnoses"]}


def run(cfg, lines, write, warn):
    """Replay `lines` (an iterable of str) with `cfg` (a loaded config); `write(str)` gets each
    output line, `warn(str)` each bad-line message. Returns (good, bad) counts."""
    metrics = sorted(cfg["metrics"])
    devices = {}
    last_ts = {}
    good = bad = 0
    n = 0
    for line in lines:
        n += 1
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            warn("line %d: not valid JSON" % n)
            bad += 1
            continue
        problems = check_record(rec, metrics, last_ts)
        if problems:
            warn(_one_line("line %d: %s" % (n, "; ".join(problems))))
            bad += 1
            continue
        thing = rec["thing"]
        dev = devices.get(thing)
        if dev is None:
            c = dict(cfg)
            c["thing"] = thing
            dev = devices[thing] = Device(c)
        last_ts[thing] = rec["ts"]
        res = dev.process(rec["ts"], rec["raw"], rec.get("status"))
        write(dumps(output_record(res)) + "\n")
        good += 1
    return good, bad


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: replay.py CONFIG.json IN.jsonl [OUT.jsonl]\n")
        return 2
    try:
        with open(argv[0]) as f:
            cfg = _config.load(json.load(f))
    except _config.ConfigError as e:
        for prob in e.problems:
            sys.stderr.write("%s: %s\n" % (argv[0], prob))
        return 3
    except (OSError, ValueError):
        sys.stderr.write("%s: cannot read a JSON config\n" % argv[0])
        return 3
    try:
        src = open(argv[1])
    except OSError:
        sys.stderr.write("%s: cannot open\n" % argv[1])
        return 3
    out = open(argv[2], "w") if len(argv) == 3 else sys.stdout
    try:
        good, bad = run(cfg, src, out.write, lambda msg: sys.stderr.write(msg + "\n"))
    finally:
        src.close()
        if out is not sys.stdout:
            out.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
