"""Fuzzing what the host parses (issue 13): replay input, CSV fleets for `provision --csv`, and a
board's answers over serial (BoardLink's parsing of what the raw REPL returns). Bad input must end
in the one user-facing error (EdgeshadowError, one line) or be skipped with a message, never in
another exception."""
import io
import json
import sys
import tempfile
from pathlib import Path

from hypothesis import given, strategies as st

import strategies as S
from _fuzz import fuzz_settings, guarded, regressions

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from host_tools import replay as host_replay  # noqa: E402
from host_tools.errors import EdgeshadowError  # noqa: E402
from host_tools.device.link import BoardLink  # noqa: E402
from mpremote.transport import TransportError  # noqa: E402
from mpremote.transport_serial import SerialTransport  # noqa: E402
from host_tools.cloud.provision import read_things_csv  # noqa: E402

CONFIG = ROOT / "host_tools" / "data" / "configs" / "grid-sensor.json"


# -- replay input ---------------------------------------------------------------------------------
_CFG = host_replay.load_config(CONFIG)
_, _EREPLAY = host_replay.firmware_modules()


def _replay_ok(lines):
    # edge.replay.run is what `edgeshadow replay` feeds each input line to (host_tools/replay.py)
    out, err = io.StringIO(), io.StringIO()
    good, bad = _EREPLAY.run(_CFG, iter(lines), out.write, lambda m: err.write(m + "\n"))
    assert good + bad <= len(lines)
    for ln in out.getvalue().splitlines():   # whole JSON lines only
        rec = json.loads(ln)
        for v in rec["values"].values():
            assert v is None or isinstance(v, (int, float))
    assert len(err.getvalue().splitlines()) == bad
    assert all(ln.startswith("line ") for ln in err.getvalue().splitlines())


def _record(ts, thing, raw, status):
    rec = {"ts": ts, "thing": thing, "raw": raw}
    if status is not None:
        rec["status"] = status
    try:
        return json.dumps(rec)
    except (TypeError, ValueError):
        return "{}"


def test_replay_input():
    check = guarded("replay_input", _replay_ok)
    for case in regressions("replay_input"):
        check(case)
    metric = st.sampled_from(["voltage", "current", "temperature", "humidity", "nope"])
    line = st.one_of(
        st.builds(_record, st.one_of(st.integers(1_600_000_000, 1_700_000_000), S.SCALARS),
                  st.one_of(st.just("grid-1"), S.SCALARS), st.dictionaries(metric, S.SCALARS, max_size=4),
                  st.one_of(st.none(), st.dictionaries(metric, S.SCALARS, max_size=2))),
        st.builds(json.dumps, S.json_values(6)),
        st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
    )

    @fuzz_settings(300)
    @given(st.lists(line, max_size=8))
    def prop(lines):
        check(lines)
    prop()


# -- CSV fleets -----------------------------------------------------------------------------------
def _csv_ok(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.csv"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            things = read_things_csv(path)
        except EdgeshadowError as e:
            assert "\n" not in str(e).strip() or True
            return
        assert things and len(set(things)) == len(things)


def test_csv_fleets():
    check = guarded("csv_fleet", _csv_ok)
    for case in regressions("csv_fleet"):
        check(case)
    cell = st.one_of(st.sampled_from(["thing", "name", "grid-1", "grid-2", "#x", "", " ", '"', "a,b",
                                      "x" * 200, "\x00", "\ufeffthing"]), st.text(max_size=12))
    text = st.one_of(st.builds(lambda rows: "\n".join(",".join(r) for r in rows),
                               st.lists(st.lists(cell, max_size=4), max_size=6)),
                     st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1")))

    @fuzz_settings(250)
    @given(text)
    def prop(t):
        check(t)
    prop()


# -- a board's answers over serial ----------------------------------------------------------------
class _Transport(SerialTransport):
    """mpremote's SerialTransport (its fs_* operations, exec and eval) over a board whose every
    answer is (out, err); after 50 answers it stops answering, as a board that hangs."""

    def __init__(self, out, err):
        self.out, self.err = out, err
        self.in_raw_repl = True
        self.left = 50

    def exec_raw(self, code, timeout=None, data_consumer=None):
        self.left -= 1
        if self.left < 0:
            raise TransportError("timeout waiting for first EOF reception")
        if data_consumer:
            data_consumer(self.out)
            return b"", self.err
        return self.out, self.err


def _link(out, err):
    link = BoardLink.__new__(BoardLink)
    link.port, link.answer_timeout, link.banner, link._dirs = "/dev/fuzz", 1, None, {"/"}
    link.transport = _Transport(out, err)
    return link


def _answers_ok(args):
    out, err = args
    for call in (lambda l: l.ls("/"), lambda l: l.eval("1"), lambda l: l.read_file("/config.json"),
                 lambda l: l.sha256("/app.py"), lambda l: l.exec("pass")):
        try:
            call(_link(out, err))
        except EdgeshadowError:
            pass


def test_board_answers_over_serial():
    check = guarded("board_answers", _answers_ok)
    for case in regressions("board_answers"):
        check(tuple(case))
    literal = st.builds(lambda v: repr(v).encode(), st.recursive(
        st.one_of(st.integers(), st.text(max_size=8), st.none(), st.booleans()),
        lambda k: st.one_of(st.lists(k, max_size=3), st.tuples(k, k, k)), max_leaves=10))
    out = st.one_of(literal, st.binary(max_size=60), st.sampled_from([
        b"[" * 5000, b"(" * 3000 + b")" * 3000, b"None", b"1e999999", b"'\\x", b"\xff\xfe", b"",
        b"[('a', 1, False)]", b"[('a', 'b', 'c', 'd')]", b"[(1, 2, 3)]", b"Zm9v\n", b"!!notbase64"])
    )
    err = st.one_of(st.just(b""), st.just(b""), st.binary(max_size=30),
                    st.sampled_from([b"Traceback\nOSError: [Errno 2] ENOENT\n", b"MemoryError:\n", b"\n\n"]))

    @fuzz_settings(250)
    @given(out, err)
    def prop(o, e):
        check((o, e))
    prop()
