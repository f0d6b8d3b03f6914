# Store-and-forward spool on flash: every reading/alert is appended here before it is sent and
# removed only after its PUBACK. Survives reboot and power loss.
#
# Layout of `dir`: segment files "<first seq, 8 hex>.seg", appended to and never rewritten, and
# "meta.json" ({"head": lowest unacknowledged seq, "dropped": n}) replaced atomically (temp file, then
# os.rename: atomic on LittleFS). A segment goes once all its records are acknowledged, or when the
# spool is full (oldest first; its unacknowledged records are counted in `dropped`).
# Record: header "<BBIII" magic, kind, seq, length, crc32(kind|seq|length|payload), then the payload.
# A torn or corrupt record ends its segment: only the last record written before a crash can be torn,
# and appends after a restart go to a new segment, so nothing else is lost.
import os
import struct
import binascii
import json

_MAGIC = 0xA5
_HDR = "<BBIII"
_HDR_LEN = 14
KIND_READING = 1
KIND_ALERT = 2


def write_atomic(path, data):
    """Replace `path` with `data` so a crash leaves the old or the new file, whole. `data`: bytes,
    str, or an object written as JSON straight to the file (no copy of the text in RAM)."""
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        if isinstance(data, (str, bytes)):
            f.write(data)
        else:
            json.dump(data, f)
    os.rename(tmp, path)


def _crc(kind, seq, payload):
    return binascii.crc32(payload, binascii.crc32(struct.pack("<BI", kind, seq), 0)) & 0xFFFFFFFF


class SpoolError(Exception):
    pass


class Spool:
    def __init__(self, dir, max_bytes=65536, segment_bytes=None):
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
        self._open()

    # --- recovery --------------------------------------------------------------------------
    def _path(self, first):
        return "%s/%08x.seg" % (self.dir, first)

    def _open(self):
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        try:
            with open(self.dir + "/meta.json") as f:
                meta = json.loads(f.read())
            self.head = int(meta["head"])
            self.dropped = int(meta["dropped"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no meta yet (or the pre-rename temp file only): start from the segments
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg") and len(n) == 12)
        last_seq = 0
        for name in names:
            first = int(name[:8], 16)
            path = self._path(first)
            last, good = self._scan_segment(path, first)
            size = os.stat(path)[6]
            if good < size:
                self.torn += 1
            if last < first or last < self.head:
                os.remove(path)  # nothing valid, or all of it acknowledged before a crash
            else:
                self._segs.append([first, last, size])
            if last > last_seq:
                last_seq = last
        self.next_seq = max(last_seq + 1, self.head)
        if self.head < (self._segs[0][0] if self._segs else self.next_seq):
            self.head = self._segs[0][0] if self._segs else self.next_seq

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
        write_atomic(self.dir + "/meta.json", json.dumps({"head": self.head, "dropped": self.dropped}))

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

    def ack(self, seq):
        self.ack_all((seq,))

    def ack_all(self, seqs):
        """Acknowledge records (their PUBACK arrived); fully acknowledged segments are removed."""
        moved = False
        for s in seqs:
            if s >= self.head:
                self._acked.add(s)
        while self.head in self._acked:
            self._acked.remove(self.head)
            self.head += 1
            moved = True
        if not moved:
            return
        removed = False
        while self._segs and self._segs[0][0] <= self._segs[0][1] < self.head:
            self._remove_segment()
            removed = True
        if not removed:
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
        self._close_file()
