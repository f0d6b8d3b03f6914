# Store-and-forward spool on flash: every reading/alert is appended here before it is sent and
# removed only after its PUBACK. Survives reboot and power loss.
#
# Layout of `dir`: segment files "<first seq, 8 hex>.seg", appended to and never rewritten, and
# "meta.json" ({"head": lowest unacknowledged seq, "dropped": n}) replaced atomically (temp file, then
# os.rename: atomic on LittleFS). A segment goes once all its records are acknowledged, or when the
# spool is full (oldest first; its unacknowledged records are counted in `dropped`).
# meta.json is saved before a segment is removed, and otherwise at most once per `meta_every`
# acknowledgements or `meta_s` seconds (flash wear, time per PUBACK). The bound after a crash or
# power loss: at most meta_every - 1 acknowledged records, plus those acknowledged out of order
# above head, are sent again (duplicates by (thing, seq), which subscribers drop); none is lost.
# meta.json is only a hint: a head the segments on flash contradict (a flipped bit, a number no
# segment can have) or whose check value is wrong is replaced by the first seq on flash (then what
# is on flash is sent again: duplicates, never a loss); the newest segment is kept even when all of
# it is acknowledged, so there is always flash to check against. Anything in `dir` that is not a
# segment file or meta.json is left alone and listed in `strays`.
# Record: header "<BBIII" magic, kind, seq, length, crc32(kind|seq|length|payload), then the payload.
# A torn or corrupt record ends its segment: only the last record written before a crash can be torn,
# and appends after a restart go to a new segment, so nothing else is lost.
import os
import struct
import binascii
import json

from compat import ticks_ms, ticks_diff
from store import write_atomic

_MAGIC = 0xA5
_HDR = "<BBIII"
_HDR_LEN = 14
KIND_READING = 1
KIND_ALERT = 2
MAX_SEQ = 0x3FFFFFFF  # sequence numbers stay small ints on an ESP32 (31-bit) and fit the "I" field
_DIR = 0x4000         # S_IFDIR in os.stat()[0]


def _crc(kind, seq, payload):
    return binascii.crc32(payload, binascii.crc32(struct.pack("<BI", kind, seq), 0)) & 0xFFFFFFFF


class SpoolError(Exception):
    pass


class Spool:
    def __init__(self, dir, max_bytes=65536, segment_bytes=None, meta_every=20, meta_s=60):
        if max_bytes < 256:
            raise ValueError("spool.max_bytes: must be at least 256, got %r" % (max_bytes,))
        self.dir = dir.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(max_bytes // 8, 256)
        self._hdr = bytearray(_HDR_LEN)
        self._f = None          # open handle of the segment being appended to
        self._segs = []         # [first_seq, last_seq, size_bytes]; last_seq < first_seq when empty
        self._acked = set()     # acknowledged out of order, above head
        self._cursor = None     # (first_seq of segment, offset, seq) of a record at or before head
        self.head = 1
        self.dropped = 0
        self.torn = 0           # torn/corrupt records skipped when the spool was opened
        self.strays = []        # names in dir that are neither segments nor meta (ignored)
        self.meta_problem = None  # why meta.json was not believed, when it was not
        self.meta_every = meta_every
        self.meta_ms = int(meta_s * 1000)
        self.meta_saves = 0
        self._unsaved = 0       # acknowledgements since meta.json was last saved
        self._saved_ms = ticks_ms()
        self._open()

    # --- recovery --------------------------------------------------------------------------
    def _path(self, first):
        return "%s/%08x.seg" % (self.dir, first)

    def _open(self):
        head, self.dropped = self._read_meta()
        segs = self._scan_dir()
        lo = segs[0][0] if segs else None
        hi = max([g[1] for g in segs]) if segs else 0
        if head is not None and head < 0:  # a wrong check value: the segments decide if any
            head = None if segs else -head
        if head is not None and segs and head > hi + 1:
            self.meta_problem = "head %d is past the last record on flash (%d)" % (head, hi)
            head = None
        if head is None:
            head = lo if segs else 1
        elif segs and head < lo:
            head = lo  # the records below were dropped (spool full) or removed once acknowledged
        self.head = head
        for g in segs:
            if g[1] < head and g is not segs[-1]:
                os.remove(self._path(g[0]))  # all of it acknowledged before a crash
            else:
                self._segs.append(g)
        self.next_seq = max(hi + 1, head)

    def _listdir(self):
        """The names in dir, made first if missing (a file in its place is moved aside)."""
        try:
            return os.listdir(self.dir)
        except OSError:
            pass
        try:
            os.stat(self.dir)       # there, but not a folder: keep it aside, never delete it
            os.rename(self.dir, self.dir + ".stray")
            self.strays.append(self.dir)
        except OSError:
            pass
        os.mkdir(self.dir)
        return []

    def _scan_dir(self):
        """[first, last, size] of each segment with valid records, in order; strays listed."""
        segs = []
        for name in sorted(self._listdir()):
            first = _seg_first(name)
            ours = first is not None or name in ("meta.json", "meta.json.tmp")
            if ours and os.stat(self.dir + "/" + name)[0] & _DIR:
                self.strays.append(name)  # a folder where we need to write a file: moved aside
                try:
                    os.rename(self.dir + "/" + name, self.dir + "/" + name + ".stray")
                except OSError:
                    pass
                continue
            if first is None:
                if not ours:
                    self.strays.append(name)
                continue
            path = self._path(first)
            last, good = self._scan_segment(path, first)
            size = os.stat(path)[6]
            if good < size:
                self.torn += 1
            if last < first:
                os.remove(path)  # nothing valid in it
            else:
                segs.append([first, last, size])
        return segs

    def _read_meta(self):
        """(head or None, dropped) from meta.json; None when it is missing or implausible."""
        try:
            with open(self.dir + "/meta.json") as f:
                meta = json.loads(f.read())
            head, dropped, crc = meta["head"], meta["dropped"], meta.get("crc")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, 0  # no meta yet (or the pre-rename temp file only): from the segments
        if type(dropped) is not int or dropped < 0:
            dropped = 0
        if type(head) is not int or not 1 <= head <= MAX_SEQ:
            self.meta_problem = "head %r is not a sequence number" % (head,)
            return None, dropped
        if crc is not None and crc != _meta_crc(head, dropped):  # (no crc: written before it had one)
            self.meta_problem = "its check value does not match (head %d, dropped %d)" % (head, dropped)
            return -head, dropped  # suspect: believed only when there is no segment to go by
        return head, dropped

    def _scan_segment(self, path, first):
        """(last good seq, bytes of good records) of one segment file."""
        off = 0
        last = first - 1
        with open(path, "rb") as f:
            while True:
                rec = self._read_record(f)
                if rec is None:
                    break
                seq, kind, payload = rec
                if seq != last + 1:
                    break
                last = seq
                off += _HDR_LEN + len(payload)
        return last, off

    def _read_record(self, f):
        hdr = self._hdr
        if f.readinto(hdr) != _HDR_LEN:
            return None
        magic, kind, seq, length, crc = struct.unpack(_HDR, hdr)
        if magic != _MAGIC or length > self.max_bytes:
            return None
        payload = f.read(length)
        if len(payload) != length or _crc(kind, seq, payload) != crc:
            return None
        return seq, kind, payload

    # --- writing ---------------------------------------------------------------------------
    def append(self, kind, payload):
        """Store one record durably; returns its sequence number. Drops the oldest when full."""
        n = len(payload)
        size = _HDR_LEN + n
        if size > self.max_bytes:
            raise SpoolError("spool: record of %d bytes exceeds spool.max_bytes %d" % (n, self.max_bytes))
        seq = self.next_seq
        while self._segs and self.bytes + size > self.max_bytes:
            self._drop_oldest()
        seg = self._segs[-1] if self._segs else None
        if seg is None or self._f is None or seg[2] + size > self.segment_bytes and seg[2] > 0:
            seg = self._new_segment(seq)
        frame = struct.pack(_HDR, _MAGIC, kind, seq, n, _crc(kind, seq, payload)) + payload
        self._f.write(frame)  # one write: a crash tears at most this record
        self._f.flush()
        seg[1] = seq
        seg[2] += size
        self.next_seq = seq + 1
        return seq

    def _new_segment(self, seq):
        self._close_file()
        seg = [seq, seq - 1, 0]
        self._f = open(self._path(seq), "ab")
        self._segs.append(seg)
        return seg

    def _close_file(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def _drop_oldest(self):
        first, last, size = self._segs[0]
        lost = 0
        for s in range(max(first, self.head), last + 1):
            if s not in self._acked:
                lost += 1
        self._remove_segment(lost)

    def _remove_segment(self, lost=0):
        first, last, size = self._segs.pop(0)
        if not self._segs:
            self._close_file()
        if last + 1 > self.head:
            self.head = last + 1
        self.dropped += lost
        self._acked = set(s for s in self._acked if s >= self.head)
        self._save_meta()  # before the removal: a crash in between leaves an all-acked segment
        os.remove(self._path(first))
        self._cursor = None

    def _save_meta(self):
        write_atomic(self.dir + "/meta.json", json.dumps(
            {"head": self.head, "dropped": self.dropped, "crc": _meta_crc(self.head, self.dropped)}))
        self.meta_saves += 1
        self._unsaved = 0
        self._saved_ms = ticks_ms()

    def flush(self):
        """Save meta.json now if acknowledgements are not in it yet (before a planned reset)."""
        if self._unsaved:
            self._save_meta()

    # --- reading and acknowledging --------------------------------------------------------
    def peek(self, n=1, start=0):
        """Up to n unacknowledged records from seq `start` on, oldest first: [(seq, kind, payload)]."""
        out = []
        lo = start if start > self.head else self.head
        for seg in self._segs:
            if len(out) >= n:
                break
            first, last = seg[0], seg[1]
            if last < lo:
                continue
            off, at = 0, first
            cur = self._cursor
            if cur is not None and cur[0] == first and cur[2] <= lo:
                off, at = cur[1], cur[2]
            with open(self._path(first), "rb") as f:
                f.seek(off)
                while len(out) < n and at <= last:
                    rec = self._read_record(f)
                    if rec is None:
                        break
                    seq = rec[0]
                    if seq >= lo and not out:
                        self._cursor = (first, off, seq)
                    if seq >= lo and seq not in self._acked:
                        out.append(rec)
                    off += _HDR_LEN + len(rec[2])
                    at = seq + 1
        return out

    def ack_all(self, seqs):
        """Acknowledge records (their PUBACK arrived); fully acknowledged segments are removed."""
        was = self.head
        for s in seqs:
            if s >= self.head:
                self._acked.add(s)
        while self.head in self._acked:
            self._acked.remove(self.head)
            self.head += 1
        if self.head == was:
            return
        removed = False
        # the newest segment stays even when all of it is acknowledged: its name and records
        # keep head checkable against flash after a reboot (meta.json is only a hint)
        while len(self._segs) > 1 and self._segs[0][0] <= self._segs[0][1] < self.head:
            self._remove_segment()
            removed = True
        if not removed:
            self._unsaved += self.head - was
            if (self._unsaved >= self.meta_every
                    or ticks_diff(ticks_ms(), self._saved_ms) >= self.meta_ms):
                self._save_meta()

    @property
    def backlog(self):
        return self.next_seq - self.head - len(self._acked)

    @property
    def bytes(self):
        t = 0
        for s in self._segs:
            t += s[2]
        return t

    def close(self):
        self.flush()
        self._close_file()


def _seg_first(name):
    """The first seq of a segment file's name "<8 hex>.seg", or None for any other name."""
    if len(name) != 12 or not name.endswith(".seg"):
        return None
    try:
        first = int(name[:8], 16)
    except ValueError:
        return None
    return first if "%08x.seg" % first == name and 1 <= first <= MAX_SEQ else None


def _meta_crc(head, dropped):
    return binascii.crc32(b"%d,%d" % (head, dropped)) & 0xFFFFFFFF
