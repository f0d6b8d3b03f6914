# Spool -> MQTT: sends the spool's records in order, readings batched into one telemetry publish
# (under 5 KB, AWS meters in 5 KB units), alert events one per publish at once; acknowledges spool
# records when their PUBACK arrives; stays under AWS's 100 publishes/s per connection.
#
# Wire format: each spool payload is a JSON object; the forwarder adds its sequence number as the
# first key, so a subscriber counts by "seq" and spots duplicates (a re-send after a reconnect or a
# reboot carries the same seq). Telemetry: a JSON array of readings; alerts: one object.
import asyncio
import gc

from store.spool import KIND_ALERT

from compat import ticks_ms, ticks_diff


def with_seq(seq, payload):
    """b'{"seq":N,...}' from a JSON object payload, without parsing it."""
    if payload[:1] != b"{":
        raise ValueError("forwarder: spool record %d is not a JSON object" % seq)
    rest = bytes(payload[1:]).lstrip()
    return (b'{"seq":%d' % seq) + (b"," if rest[:1] != b"}" else b"") + rest


class Forwarder:
    def __init__(self, spool, conn, telemetry_topic, alerts_topic, batch_max=20, batch_bytes=5000,
                 rate=50, linger_s=0, log=print):
        self.spool = spool
        self.conn = conn
        self.client = conn.client
        self.telemetry_topic = telemetry_topic
        self.alerts_topic = alerts_topic
        self.batch_max = batch_max
        self.batch_bytes = batch_bytes
        self.min_gap_ms = 1000 // rate if rate else 0
        self.linger_ms = int(linger_s * 1000)
        self.log = log
        self.published = 0                # publishes sent (re-sends by the client not counted)
        self.next_seq = spool.head        # first seq not yet handed to MQTT
        self._last_pub = None
        self._kick = asyncio.Event()
        self._urgent = False
        self.client.on_puback = self._on_puback

    def kick(self, urgent=False):
        """Something was appended to the spool (urgent: an alert, skip the linger)."""
        self._urgent = self._urgent or urgent
        self._kick.set()

    def _on_puback(self, pid, seqs):
        if seqs:  # other publishers' acks (the shadow's) carry no spool records
            self.spool.ack_all(seqs)

    async def _wait_kick(self, timeout_ms=None):
        try:
            if timeout_ms is None:
                await self._kick.wait()
            else:
                await asyncio.wait_for(self._kick.wait(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            pass
        self._kick = asyncio.Event()

    def _batch(self):
        """(topic, payload, seqs) of the next publish, or None when nothing is waiting."""
        if self.next_seq < self.spool.head:
            self.next_seq = self.spool.head  # records dropped (spool full) while waiting
        recs = self.spool.peek(self.batch_max, self.next_seq)
        if not recs:
            return None
        seq, kind, payload = recs[0]
        if kind == KIND_ALERT:
            return self.alerts_topic, with_seq(seq, payload), [seq]
        parts = []
        seqs = []
        size = 1
        for seq, kind, payload in recs:
            if kind == KIND_ALERT:
                break
            item = with_seq(seq, payload)
            if parts and size + len(item) + 1 > self.batch_bytes:
                break
            parts.append(item)
            seqs.append(seq)
            size += len(item) + 1
        del recs
        out = bytearray(size)  # "[a,b,...]" in one buffer of its exact size
        i = 0
        for item in parts:
            out[i] = 44  # ","
            out[i + 1:i + 1 + len(item)] = item
            i += 1 + len(item)
        out[0] = 91      # "["
        out[i] = 93      # "]"
        return self.telemetry_topic, out, seqs

    async def run(self):
        first_wait = None
        while True:
            if not self.conn.up:
                await self.conn.wait_up()
            try:
                b = self._batch()
            except MemoryError:  # a fragmented heap (a long backlog after a reboot): fewer
                gc.collect()     # records per publish, never a stopped forwarder
                self.batch_max = max(1, self.batch_max // 2)
                self.log("net: low on memory, batches of %d records" % self.batch_max)
                await asyncio.sleep(0.1)
                continue
            if b is None:
                await self._wait_kick()
                continue
            topic, payload, seqs = b
            if (self.linger_ms and topic == self.telemetry_topic and len(seqs) < self.batch_max
                    and not self._urgent and len(payload) < self.batch_bytes // 2):
                now = ticks_ms()
                if first_wait is None:
                    first_wait = now
                left = self.linger_ms - ticks_diff(now, first_wait)
                if left > 0:
                    await self._wait_kick(left)
                    continue
            first_wait = None
            self._urgent = False
            if self._last_pub is not None and self.min_gap_ms:
                gap = self.min_gap_ms - ticks_diff(ticks_ms(), self._last_pub)
                if gap > 0:
                    await asyncio.sleep(gap / 1000)
            try:
                await self.client.publish(topic, payload, qos=1, token=seqs)
            except Exception as e:  # link down (the connection reconnects) or a refused payload
                if isinstance(e, ValueError):
                    self.log("net: spool records %d..%d cannot be sent (%s): dropped" % (seqs[0], seqs[-1], e))
                    self.spool.ack_all(seqs)
                    self.next_seq = seqs[-1] + 1
                else:
                    await asyncio.sleep(0.05)
                    await self.conn.wait_up()
                continue
            self._last_pub = ticks_ms()
            self.published += 1
            self.next_seq = seqs[-1] + 1
