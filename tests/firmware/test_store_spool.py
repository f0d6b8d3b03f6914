# store.spool: framing, order, acknowledgement, bounds, recovery from torn records (both runtimes).
import os

from _helpers import raises, tmpdir
from store import write_atomic
from store.spool import Spool, SpoolError, KIND_READING, KIND_ALERT


def segs(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".seg"))


def rm_tree(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def test_append_peek_ack_in_order_and_survive_reopen():
    d = tmpdir()
    s = Spool(d, 4096)
    seqs = [s.append(KIND_READING, b'{"v":%d}' % i) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    s.append(KIND_ALERT, b'{"alert":"x"}')
    assert s.backlog == 6
    assert [r[0] for r in s.peek(3)] == [1, 2, 3]
    assert s.peek(1)[0] == (1, KIND_READING, b'{"v":0}')
    s.ack_all([1, 2])
    s.close()
    s = Spool(d, 4096)
    assert s.backlog == 4
    assert [(r[0], r[1]) for r in s.peek(10)] == [(3, 1), (4, 1), (5, 1), (6, 2)]
    assert s.append(KIND_READING, b"{}") == 7
    rm_tree(d)


def test_peek_from_a_start_seq_and_out_of_order_acks():
    d = tmpdir()
    s = Spool(d, 4096)
    for i in range(6):
        s.append(KIND_READING, b"{}")
    assert [r[0] for r in s.peek(2, start=4)] == [4, 5]
    s.ack_all((3,))
    assert s.head == 1 and s.backlog == 5
    assert [r[0] for r in s.peek(10)] == [1, 2, 4, 5, 6]
    s.ack_all([1, 2])
    assert s.head == 4 and s.backlog == 3
    rm_tree(d)


def test_acknowledged_segments_are_removed_and_seq_never_reused():
    d = tmpdir()
    s = Spool(d, 2048, segment_bytes=256)
    for i in range(40):
        s.append(KIND_READING, b'{"i":%d,"pad":"xxxxxxxxxxxxxxxxxxxx"}' % i)
    n_before = len(segs(d))
    assert n_before > 3
    s.ack_all(range(1, 41))
    # only the newest segment stays (it keeps head checkable against flash after a reboot)
    assert len(segs(d)) == 1 and s.backlog == 0 and s.bytes <= 256 and s.peek(10) == []
    s.close()
    s = Spool(d, 2048, segment_bytes=256)
    assert s.append(KIND_READING, b"{}") == 41
    rm_tree(d)


def test_full_spool_drops_oldest_and_counts_them():
    d = tmpdir()
    s = Spool(d, 1024, segment_bytes=256)
    for i in range(100):
        s.append(KIND_READING, b'{"i":%03d,"pad":"................"}' % i)
        assert s.bytes <= 1024
    kept = [r[0] for r in s.peek(100)]
    assert kept == list(range(kept[0], 101))           # newest kept, in order, no gaps
    assert s.dropped == 100 - len(kept) and s.dropped > 0
    assert s.backlog == len(kept)
    s.close()
    s = Spool(d, 1024, segment_bytes=256)
    assert s.dropped == 100 - len(kept)                  # the counter survives a reboot
    assert [r[0] for r in s.peek(100)] == kept
    rm_tree(d)


def test_oversized_record_is_refused_and_changes_nothing():
    d = tmpdir()
    s = Spool(d, 512)
    s.append(KIND_READING, b"{}")
    e = raises(SpoolError, s.append, KIND_READING, b"x" * 600)
    assert "600 bytes" in str(e) and "max_bytes" in str(e)
    assert s.backlog == 1 and s.next_seq == 2
    assert raises(ValueError, Spool, d, 10)
    rm_tree(d)


def _tear_last(path, cut):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) - cut])


def test_torn_last_record_is_skipped_and_nothing_else_lost():
    for cut in (1, 5, 14, 20):
        d = tmpdir()
        s = Spool(d, 4096)
        for i in range(5):
            s.append(KIND_READING, b'{"v":%d,"x":"abcdefghij"}' % i)
        s.close()
        _tear_last(d + "/" + segs(d)[-1], cut)
        s = Spool(d, 4096)
        assert s.torn == 1
        assert [r[0] for r in s.peek(10)] == [1, 2, 3, 4]
        assert s.append(KIND_READING, b'{"after":1}') == 5  # the torn one was never handed out
        s.close()
        s = Spool(d, 4096)
        assert [r[0] for r in s.peek(10)] == [1, 2, 3, 4, 5]
        assert s.peek(10)[-1][2] == b'{"after":1}'
        rm_tree(d)


def test_corrupt_crc_ends_the_segment_there():
    d = tmpdir()
    s = Spool(d, 4096)
    for i in range(3):
        s.append(KIND_READING, b'{"v":%d}' % i)
    s.close()
    p = d + "/" + segs(d)[0]
    with open(p, "rb") as f:
        data = bytearray(f.read())
    data[-2] ^= 0xFF  # flip a payload byte of the last record
    with open(p, "wb") as f:
        f.write(data)
    s = Spool(d, 4096)
    assert [r[0] for r in s.peek(10)] == [1, 2] and s.torn == 1
    rm_tree(d)


def test_meta_file_is_replaced_atomically():
    d = tmpdir()
    write_atomic(d + "/cfg.json", b'{"a":1}')
    write_atomic(d + "/cfg.json", b'{"a":2}')
    with open(d + "/cfg.json") as f:
        assert f.read() == '{"a":2}'
    assert sorted(os.listdir(d)) == ["cfg.json"]
    # a leftover temp file from a crash is ignored by the spool
    s = Spool(d, 1024)
    s.append(KIND_READING, b"{}")
    s.ack_all((1,))
    s.close()  # meta.json is saved once per meta_every acks, and on close
    with open(d + "/meta.json.tmp", "w") as f:
        f.write('{"head": 9')
    s = Spool(d, 1024)
    assert s.head == 2 and s.backlog == 0
    rm_tree(d)
