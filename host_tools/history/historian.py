"""The historian: every device's telemetry, alerts and shadow reports, from the broker into SQLite.

`Historian(settings, store)` holds one paho-mqtt connection with a persistent session
(clean_session false, a fixed client id) subscribed at QoS 1, and acknowledges a message only
after the transaction holding it has committed (paho's manual_ack). So while the historian is
down the broker queues for it, a message in flight when it is killed is sent again, and what is
sent again is stored once (host_tools/history/store.py). A writer thread takes what arrived,
stores it as one batch and acknowledges it; `prune` runs at start and hourly.

`running(state_file, db)` runs one beside the local broker (`edgeshadow broker`, the demo).
"""
import contextlib
import queue
import ssl
import sys
import threading
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError
from host_tools.history.store import HistoryStore  # noqa: F401 (API: historian.HistoryStore)

CLIENT_ID = "edgeshadow-historian"
QOS = 1


def topics(prefix="dt"):
    return [f"{prefix}/+/telemetry", f"{prefix}/+/alerts", f"{prefix}/+/status",
            "$aws/things/+/shadow/update/documents"]


class Historian:
    """Use as a context manager, or start()/stop(). `.stats` counts what was stored."""

    def __init__(self, settings, store, client_id=CLIENT_ID, prefix="dt", batch_max=1000,
                 retention_s=None, prune_every_s=3600.0, say=None, connect_timeout_s=10.0):
        import paho.mqtt.client as mqtt
        self.settings, self.store = settings, store
        self.batch_max = batch_max
        self.retention_s = retention_s
        self.prune_every_s = prune_every_s
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        self.connect_timeout_s = connect_timeout_s
        self.topic_list = topics(prefix)
        self.stats = {"messages": 0, "readings": 0, "values": 0, "stored": 0, "alerts": 0,
                      "shadows": 0, "bad": 0, "batches": 0}
        self.failure = None
        self._inbox = queue.Queue()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._session = 0           # connection count: a mid is acknowledged only on its own connection
        self._writer = None
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False,
                                  manual_ack=True)
        if settings.tls:
            ctx = ssl.create_default_context(cafile=settings.ca)
            if settings.cert:
                ctx.load_cert_chain(settings.cert, settings.key)
            self.client.tls_set_context(ctx)
        self.client.reconnect_delay_set(0.2, 5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- paho's thread -----------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.failure = f"the broker refused the connection: {reason_code}"
            self._subscribed.set()
            return
        self._session += 1
        client.subscribe([(t, QOS) for t in self.topic_list])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.failure = f"the broker refused the subscriptions ({bad[0]}): is this the monitor's certificate?"
        self._subscribed.set()

    def _on_message(self, client, userdata, msg):
        self._inbox.put((msg.topic, msg.payload, time.time(), msg.mid, msg.qos, self._session))

    # -- the writer --------------------------------------------------------------------------------
    def _write_loop(self):
        next_prune = time.monotonic()
        while not self._stop.is_set():  # what is not stored at stop is sent again next time
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                first = None
            batch = [first] if first else []
            while len(batch) < self.batch_max:  # whatever else has arrived: one transaction
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if batch:
                try:
                    counts = self.store.ingest([(t, p, w) for t, p, w, *_ in batch])
                except Exception as e:  # e.g. disk full: nothing acknowledged, the broker keeps it
                    self.failure = f"cannot store into {self.store.path}: {e}"
                    self._stop.set()
                    return
                for *_, mid, qos, session in batch:
                    if qos and session == self._session:
                        self.client.ack(mid, qos)
                self._count(len(batch), counts)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.prune_every_s
                deleted = self.store.prune(retention_s=self.retention_s)
                if any(deleted.values()):
                    self.say("historian: retention removed " + ", ".join(f"{n} {t}" for t, n in deleted.items() if n))

    def _count(self, n, counts):
        s = self.stats
        s["messages"] += n
        s["batches"] += 1
        for k in ("readings", "values", "stored", "alerts", "shadows", "bad"):
            s[k] += getattr(counts, k)
        for p in counts.problems[:3]:
            self.say(f"historian: skipped {p}")

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        s = self.settings
        self._writer = threading.Thread(target=self._write_loop, name="historian-writer", daemon=True)
        self._writer.start()
        try:
            self.client.connect(s.host, s.port, keepalive=30)
        except (OSError, ssl.SSLError) as e:
            self.stop()
            raise EdgeshadowError(f"historian: cannot connect to the broker at {s.describe()}: {e}")
        self.client.loop_start()
        if not self._subscribed.wait(self.connect_timeout_s) or self.failure:
            why = self.failure or f"no answer within {self.connect_timeout_s:g} s"
            self.stop()
            raise EdgeshadowError(f"historian: {s.describe()}: {why}")
        return self

    def check(self):
        """EdgeshadowError if the writer stopped on a failure."""
        if self.failure:
            raise EdgeshadowError(f"historian: {self.failure}")

    def stop(self):
        """Finish the batch being stored, then disconnect (what is not acknowledged comes again)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(10)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def historian_settings(state_file):
    """The local broker's settings with the historian's own certificate (CN edgeshadow-historian),
    if the broker made one: the CN is the client id, and the monitor's would be taken over by
    every `edgeshadow monitor` (and take it back, in turn)."""
    import json
    from host_tools.cloud.monitor import local_settings
    try:
        info = json.loads(Path(state_file).read_text())
    except (OSError, ValueError):
        info = {}
    if isinstance(info, dict) and info.get("historian_cert") and info.get("historian_key"):
        return local_settings(state_file=state_file, cert=info["historian_cert"], key=info["historian_key"])
    return local_settings(state_file=state_file)


@contextlib.contextmanager
def running(state_file, db_path, say=None, **kw):
    """A Historian on the local broker described by state_file (broker.json), storing to db_path."""
    settings = historian_settings(state_file)
    with HistoryStore(db_path) as store:
        with Historian(settings, store, say=say, **kw) as h:
            yield h
