"""Fuzzing what a board parses from outside (issue 13): MQTT packets from a hostile broker (on
CPython and inside MicroPython), shadow documents and deltas, config files, spool segments and
metadata, certificates on flash. A malformed input may be refused, never fatal: no exception but
the refusal a layer defines, no handler crash, no hang, no value that breaks the board later."""
import binascii
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, strategies as st

import strategies as S
from _fuzz import SEED, count, fuzz_settings, guarded, regressions, save_regression
from _fuzz import cases as cases_n

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mqtt_harness as H  # noqa: E402
from edge import config, delta  # noqa: E402
from edge.pipeline import Device  # noqa: E402
from net import tls  # noqa: E402
from store.spool import Spool, KIND_READING  # noqa: E402

GRID = config.load({"thing": "fuzz-001", "sku": {"ratings": {"current": 600}},
                    "metrics": {"voltage": {"unit": "V"}, "current": {"unit": "A"}},
                    "rules": [{"metric": "voltage", "type": "range", "min": 1, "max": 2},
                              {"metric": "current", "type": "rating", "max_pct": 100}]})
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
ESP32LIKE = ROOT / ".venv" / "bin" / "micropython-esp32like"


# -- MQTT from a hostile broker -------------------------------------------------------------------
def _mqtt_ok(data):
    bug = H.run(data)
    assert bug is None, bug


def test_mqtt_from_a_hostile_broker_cpython():
    check = guarded("mqtt_cpython", _mqtt_ok)
    for data in regressions("mqtt_cpython"):
        check(data)

    @fuzz_settings(250)
    @given(S.STREAMS)
    def prop(data):
        check(data)
    prop()


def _batch(strategy, n):
    out = []

    @fuzz_settings(n)
    @given(strategy)
    def collect(x):
        out.append(x)
    collect()
    return out


def _run_mpy(runtime, target, cases, extra_args=()):
    """Run the harness on a MicroPython runtime over cases; the bugs it reports fail the test."""
    with tempfile.TemporaryDirectory() as tmp:
        src, res = Path(tmp) / "cases.hex", Path(tmp) / "bugs.jsonl"
        src.write_text("".join(binascii.hexlify(c).decode() + "\n" for c in cases))
        env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware'}:{Path(__file__).resolve().parent}:.frozen")
        args = [str(runtime), *extra_args, str(Path(__file__).resolve().parent / "_mqtt_harness.py"), str(src), str(res)]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp)
        assert proc.returncode == 0 and proc.stdout.startswith("cases"), proc.stdout + proc.stderr
        count(target, len(cases))
        bugs = [json.loads(line) for line in res.read_text().splitlines()]
    for b in bugs[:3]:
        save_regression(target, bytes.fromhex(b["hex"]))
    assert not bugs, f"{len(bugs)} of {len(cases)} cases: {bugs[:3]}"


def _mutants(seeds, n, rng):
    """n cases: the seeds, then seeded mutations of them (bit flips, cuts, inserts, deletions,
    splices of two seeds): cheap to make, so the runtimes see many more cases than hypothesis
    could generate in the time."""
    out = list(seeds)
    while len(out) < n:
        d = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(5)
            i = rng.randrange(len(d) + 1)
            if op == 0 and d:
                d[min(i, len(d) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                del d[i:]
            elif op == 2:
                d[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif op == 3 and d:
                del d[min(i, len(d) - 1)]
            else:
                other = rng.choice(seeds)
                d = d[:i] + other[rng.randrange(len(other) + 1):]
        out.append(bytes(d))
    return out


def test_mqtt_from_a_hostile_broker_micropython():
    import random
    rng = random.Random(int(SEED) if SEED else 13)
    cases = regressions("mqtt_micropython") + _mutants(_batch(S.STREAMS, 150), cases_n(5000), rng)
    _run_mpy(MICROPYTHON, "mqtt_micropython", cases)


def test_mqtt_from_a_hostile_broker_esp32like():
    if not ESP32LIKE.exists():
        import pytest
        pytest.skip("the ESP32-like runtime is not in .venv/bin")
    import random
    rng = random.Random(int(SEED) + 1 if SEED else 14)
    cases = regressions("mqtt_esp32like") + _mutants(_batch(S.STREAMS, 100), cases_n(3000), rng)
    _run_mpy(ESP32LIKE, "mqtt_esp32like", cases, ("-X", "heapsize=256k"))


# -- shadow deltas --------------------------------------------------------------------------------
def _delta_ok(args):
    state, version = args
    new, problems = delta.apply_delta(GRID, {"state": state, "version": version})
    assert (new is None) != (problems is None)
    if problems is not None:
        assert problems and all(type(p) is str and ": " in p for p in problems), problems
        return
    assert config.validate(new) == [], "an applied delta left an invalid config"
    assert 1 <= new["interval_s"] <= 86400 and new["spool"]["max_bytes"] >= 4096
    d = Device(new)
    for ts in (1700000000, 1700000010):
        r = d.process(ts, {"voltage": 1.5, "current": 300.0})
        for v in r["values"].values():
            assert v is None or -1e12 <= v <= 1e12, r["values"]
        json.dumps(r, allow_nan=False)  # telemetry stays JSON


def test_shadow_deltas():
    check = guarded("shadow_delta", _delta_ok)
    for case in regressions("shadow_delta"):
        check(tuple(case))

    @fuzz_settings(300)
    @given(S.DELTA_STATES, S.SCALARS)
    def prop(state, version):
        check((state, version))
    prop()


# -- config files ---------------------------------------------------------------------------------
def _config_ok(raw):
    try:
        doc = json.loads(raw)
    except ValueError:
        return  # app.main reports an unreadable config.json and stops before the loop
    try:
        cfg = config.load(doc)
    except config.ConfigError as e:
        assert e.problems and all(": " in p for p in e.problems)
        return
    Device(cfg).process(1700000000, {m: 1.0 for m in cfg["metrics"]})


def test_config_files():
    check = guarded("config_file", _config_ok)
    for case in regressions("config_file"):
        check(case)
    docs = st.one_of(
        st.builds(lambda s: json.dumps(dict(s, thing="fuzz-001", metrics=s.get("metrics") or {"v": {}})),
                  S.SECTIONS),
        st.builds(lambda v: json.dumps(v), S.json_values()),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    )

    @fuzz_settings(250)
    @given(docs)
    def prop(raw):
        check(raw)
    prop()


# -- spool segments and metadata ------------------------------------------------------------------
def _spool_ok(files):
    d = tempfile.mkdtemp(prefix="fuzz-spool-")
    try:
        sp = os.path.join(d, "spool")
        os.mkdir(sp)
        for name, data in files:
            path = os.path.join(sp, name)
            if os.path.exists(path):
                continue  # the first entry of a name wins
            if data is None:
                os.mkdir(path)
            else:
                with open(path, "wb") as f:
                    f.write(data)
        s = Spool(sp, 8192)
        recs = s.peek(1000)
        seqs = [r[0] for r in recs]
        assert seqs == sorted(set(seqs)) and all(q >= s.head for q in seqs)
        assert s.backlog >= len(recs) >= 0
        seq = s.append(KIND_READING, b'{"x":1}')
        assert seq >= s.head and seq > max(seqs, default=0)
        s.ack_all(seqs + [seq])
        s.close()
        s = Spool(sp, 8192)
        assert s.backlog <= len(seqs) + 1
        s.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _segment(first, records):
    import struct
    from store.spool import _crc, _HDR, _MAGIC
    out = b""
    for i, (kind, payload, good) in enumerate(records):
        seq = first + i
        crc = _crc(kind, seq, payload) if good else 12345
        out += struct.pack(_HDR, _MAGIC, kind, seq, len(payload), crc) + payload
    return out


def test_spool_segments_and_metadata():
    check = guarded("spool_files", _spool_ok)
    for case in regressions("spool_files"):
        check([tuple(x) for x in case])
    names = st.one_of(st.integers(1, 3000).map(lambda n: "%08x.seg" % n),
                      st.sampled_from(["zzzzzzzz.seg", "+0000fff.seg", "00000FFF.seg", "meta.json.tmp", "x"]))
    records = st.lists(st.tuples(st.sampled_from([1, 2, 7]), st.binary(max_size=40), st.booleans()), max_size=6)
    seg = st.builds(lambda first, recs, tail: _segment(first, recs) + tail,
                    st.integers(1, 3000), records, st.binary(max_size=20))
    meta = st.one_of(st.builds(lambda h, d, c: json.dumps({"head": h, "dropped": d, "crc": c}).encode(),
                               S.SCALARS, S.SCALARS, S.SCALARS),
                     st.binary(max_size=30))
    files = st.lists(st.one_of(st.tuples(names, st.one_of(seg, st.binary(max_size=60), st.none())),
                               st.tuples(st.just("meta.json"), meta)), max_size=5)

    @fuzz_settings(150)
    @given(files)
    def prop(fs):
        check(fs)
    prop()


# -- certificates on flash ------------------------------------------------------------------------
def _real_der():
    from host_tools.cloud import certs
    from cryptography.hazmat.primitives import serialization
    with tempfile.TemporaryDirectory() as tmp:
        certs.init_ca(Path(tmp) / "ca")
        crt = certs.issue_device("fuzz-001", Path(tmp) / "dev", Path(tmp) / "ca")
        return certs.load_cert(crt).public_bytes(serialization.Encoding.DER)


def _cert_ok(args):
    der, now = args
    try:
        tls.check_dates(der, "/certs/device.der", now)
    except tls.TLSError as e:
        assert "/certs/device.der" in str(e)


def test_certificate_dates_on_flash():
    check = guarded("cert_dates", _cert_ok)
    for case in regressions("cert_dates"):
        check(tuple(case))
    der = _real_der()

    @fuzz_settings(400)
    @given(st.one_of(S.mutated(st.just(der)), st.binary(max_size=80)),
           st.one_of(st.just(None), st.integers(0, 2 ** 40)))
    def prop(data, now):
        check((data, now))
    prop()
