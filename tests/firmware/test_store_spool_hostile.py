# store.spool against what flash can hold after a bad day (issue 13): meta.json with a flipped bit or
# an impossible head, stray files and folders in the spool folder, the folder replaced by a file;
# and the bound on re-sent records when meta.json is saved once per N acknowledgements (issue 10).
import json
import os

from _helpers import tmpdir
from store import write_atomic
from store.spool import Spool, KIND_READING


def filled(n, **kw):
    d = tmpdir()
    s = Spool(d + "/spool", 8192, **kw)
    for i in range(n):
        s.append(KIND_READING, b'{"i":%d}' % i)
    return d, s


def meta(d):
    with open(d + "/spool/meta.json") as f:
        return json.loads(f.read())


def test_a_flipped_bit_in_meta_head_loses_no_backlog():
    d, s = filled(45)
    s.close()
    write_atomic(d + "/spool/meta.json", json.dumps({"head": 1 + (1 << 20), "dropped": 0}))
    s = Spool(d + "/spool", 8192)
    assert [r[0] for r in s.peek(100)] == list(range(1, 46))   # the whole backlog is still sent
    assert s.append(KIND_READING, b"{}") == 46                   # numbering goes on, no jump
    assert "past the last record" in s.meta_problem


def test_a_head_beyond_any_sequence_number_is_not_believed():
    for head in (2 ** 32 + 5, 0, -3, "7", 1.5, None):
        d, s = filled(3)
        s.close()
        write_atomic(d + "/spool/meta.json", json.dumps({"head": head, "dropped": 0}))
        s = Spool(d + "/spool", 8192)
        assert [r[0] for r in s.peek(10)] == [1, 2, 3], head
        assert s.append(KIND_READING, b"{}") == 4
        assert s.meta_problem == "head %r is not a sequence number" % (head,)


def test_a_plausible_head_with_a_bad_check_value_resends_rather_than_skips():
    d, s = filled(10)
    s.ack_all(range(1, 3))
    s.close()
    m = meta(d)
    assert m["head"] == 3
    m["head"] = 7  # a flipped bit that still lands inside the backlog
    write_atomic(d + "/spool/meta.json", json.dumps(m))
    s = Spool(d + "/spool", 8192)
    assert [r[0] for r in s.peek(100)][:1] == [1]    # duplicates of 1, 2 at worst; 3..6 not lost
    assert "check value" in s.meta_problem


def test_stray_files_and_folders_in_the_spool_are_ignored_and_listed():
    d, s = filled(5)
    s.close()
    sp = d + "/spool"
    for name in ("zzzzzzzz.seg", "notes.txt", "+0000fff.seg"):
        with open(sp + "/" + name, "w") as f:
            f.write("junk")
    os.mkdir(sp + "/00000fff.seg")
    s = Spool(sp, 8192)
    assert sorted(s.strays) == ["+0000fff.seg", "00000fff.seg", "notes.txt", "zzzzzzzz.seg"]
    assert [r[0] for r in s.peek(100)] == [1, 2, 3, 4, 5]
    s.ack_all(range(1, 6))
    assert s.append(KIND_READING, b"{}") == 6
    assert "notes.txt" in os.listdir(sp) and "00000fff.seg.stray" in os.listdir(sp)  # nothing deleted


def test_spool_folder_replaced_by_a_file_is_kept_aside_and_the_spool_starts():
    d = tmpdir()
    with open(d + "/spool", "w") as f:
        f.write("not a folder")
    s = Spool(d + "/spool", 8192)
    assert s.strays == [d + "/spool"]
    assert s.append(KIND_READING, b"{}") == 1
    with open(d + "/spool.stray") as f:
        assert f.read() == "not a folder"


def test_meta_is_saved_once_per_n_acks_and_a_crash_resends_at_most_n_minus_1():
    d, s = filled(60, meta_every=8, meta_s=3600)
    saves = s.meta_saves
    for seq in range(1, 31):
        s.ack_all((seq,))                            # one PUBACK at a time
    assert s.meta_saves - saves <= 30 // 8           # not one save per PUBACK
    # power loss now: no close(), no flush()
    s2 = Spool(d + "/spool", 8192, meta_every=8, meta_s=3600)
    seqs = [r[0] for r in s2.peek(100)]
    assert seqs == list(range(s2.head, 61))          # nothing lost, no hole
    assert 31 - s2.head <= 8 - 1                     # the documented bound on re-sent records
    s.close()


def test_meta_is_saved_after_meta_s_seconds_even_with_few_acks():
    d, s = filled(5, meta_every=1000, meta_s=0)
    saves = s.meta_saves
    s.ack_all((1,))
    assert s.meta_saves == saves + 1 and meta(d)["head"] == 2


def test_close_saves_what_was_acknowledged():
    d, s = filled(5, meta_every=1000, meta_s=3600)
    s.ack_all([1, 2])
    s.close()
    assert meta(d)["head"] == 3


def test_the_newest_segment_stays_so_a_bad_meta_is_caught_even_with_nothing_waiting():
    d, s = filled(8)
    s.ack_all(range(1, 9))
    s.close()
    m = meta(d)
    m["head"] ^= 1 << 20                              # a flipped bit, the check value kept
    write_atomic(d + "/spool/meta.json", json.dumps(m))
    s = Spool(d + "/spool", 8192)
    assert s.append(KIND_READING, b"{}") == 9         # numbering goes on from what flash shows
    assert s.meta_problem == "its check value does not match (head %d, dropped 0)" % (9 ^ 1 << 20)
