"""The firmware process (real MicroPython) SIGKILLed at 20 random moments while it appends to the
spool, acknowledges records and rewrites a config file: every time the spool recovers, at most the
record being written is lost (torn), at most meta_every - 1 acknowledged records come back (the
documented bound on duplicates), and the config
file is always one whole version."""
import json
import random
import sys
import time

from _net_fixtures import MpyClient

from store.spool import Spool  # the firmware module itself (conftest puts firmware/ on sys.path)

ROUNDS = 20


def test_spool_and_config_survive_sigkill_at_random_moments(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    spool_dir, config = tmp_path / "spool", tmp_path / "config.json"
    job = {"mode": "writer", "spool": str(spool_dir), "config": str(config), "segment_bytes": 2048}
    appended, acked, versions = set(), set(), set()
    torn_before = 0
    expect_next = None
    for rnd in range(ROUNDS):
        p = MpyClient(job, tmp_path)
        try:
            opened = p.wait_line(lambda ln: ln.startswith("OPEN"), 10)
            p.wait_line(lambda ln: ln.startswith("APPENDED"), 10)
            time.sleep(rng.uniform(0.0, 0.25))      # the random moment (the process is busy writing)
        finally:
            p.stop()                                 # SIGKILL
        p.wait(10)
        fields = dict(f.split("=") for f in opened.split()[1:])
        if expect_next is not None:
            assert int(fields["next"]) == expect_next, f"seed {seed} round {rnd}: MicroPython reopened differently"
        for ln in p.lines:
            kind, _, rest = ln.partition(" ")
            if kind == "APPENDED":
                appended.add(int(rest))
            elif kind == "ACKED":
                acked.update(int(x) for x in rest.split())
            elif kind == "CONFIG":
                versions.add(int(rest))
            elif kind not in ("OPEN",):
                raise AssertionError(f"seed {seed} round {rnd}: unexpected output {ln!r}")

        sp = Spool(str(spool_dir), 262144, segment_bytes=2048)
        recs = sp.peek(1 << 20)
        seqs = [s for s, _, _ in recs]
        where = f"seed {seed} round {rnd}"
        assert sp.torn - torn_before <= 1, f"{where}: more than one torn record"
        torn_before = sp.torn
        assert seqs == list(range(sp.head, sp.head + len(seqs))), f"{where}: hole in the spool"
        back = [s for s in acked if s >= sp.head]   # meta.json is saved once per meta_every acks
        assert len(back) <= sp.meta_every - 1, f"{where}: more acknowledged records came back than the bound: {back}"
        lost = [s for s in appended if s >= sp.head and s not in seqs]
        assert lost == [], f"{where}: appended records lost: {lost}"
        for s, kind, payload in recs:
            json.loads(payload)                      # whole records only
        if config.exists():
            doc = json.loads(config.read_text())     # never half a file
            assert doc["thing"] == "t" and doc["version"] in versions | {max(versions, default=0) + 11}
        expect_next = sp.next_seq
        sp.close()
    assert len(appended) > ROUNDS * 5, "the writer barely ran"
    print(f"\nseed {seed}: {len(appended)} appended, {len(acked)} acked, torn records seen {torn_before}",
          file=sys.stderr)
