"""The soak's stand-ins around the boards: a relay per board (its Wi-Fi), the shadow service as a
process of its own (so it can be SIGKILLed), and the monitor that counts every reading by
(thing, seq) and every link-state message."""
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

from host_tools import ROOT
from host_tools.cloud.broker import MONITOR_CN, SERVICE_CN
from host_tools.errors import EdgeshadowError


# -- the Wi-Fi stand-in: a relay per board ---------------------------------------------------------
class Relay:
    """127.0.0.1:port -> the broker; drop() cuts every connection and refuses new ones for a while."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.down_until = 0.0
        self.conns = set()
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            if time.monotonic() < self.down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            self._close(s)

    def _close(self, s):
        with self.lock:
            self.conns.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def drop(self, seconds):
        self.down_until = time.monotonic() + seconds
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            self._close(s)

    def hold(self):
        self.drop(1e9)

    def release(self):
        self.down_until = 0.0

    def stop(self):
        self._stop = True
        self.thread.join(2)
        self.drop(0)
        self.sock.close()


# -- the shadow service as a process of its own (so it can be SIGKILLed) ---------------------------
_SERVICE = """
import signal, sys
from host_tools.cloud.shadow_service import ShadowService
s = ShadowService(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
s.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
s.stop()
"""


class ServiceProcess:
    def __init__(self, broker, state_dir):
        self.broker, self.state_dir, self.proc = broker, state_dir, None

    def start(self, timeout=20):
        crt, key = self.broker.client_cert(SERVICE_CN)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVICE, self.broker.host, str(self.broker.port),
                                      str(self.broker.ca_cert), str(crt), str(key), str(self.state_dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r or self.proc.stdout.readline().strip() != "ready":
            self.kill()
            raise EdgeshadowError("the shadow service process did not start")

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


# -- the monitor: every reading by (thing, seq), and link-state messages ---------------------------
class Monitor:
    def __init__(self, broker):
        import paho.mqtt.client as mqtt
        from host_tools.cloud.shadow_service import tls_context
        crt, key = broker.client_cert(MONITOR_CN)
        self.seqs = {}          # thing -> list of seqs in arrival order
        self.arrived = {}       # thing -> {seq: monotonic time it first arrived}
        self.status = []        # (monotonic time, thing, connected, retained)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=MONITOR_CN, protocol=mqtt.MQTTv311,
                        clean_session=True)
        c.tls_set_context(tls_context(broker.ca_cert, crt, key))
        c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe([("dt/+/telemetry", 1), ("dt/+/alerts", 1),
                                                                 ("dt/+/status", 1)])
        c.on_subscribe = lambda cl, ud, mid, rcs, pr: self.subscribed.set()
        c.on_disconnect = lambda cl, ud, fl, rc, pr: self.subscribed.clear()
        c.on_message = self._on_message
        self.client = c
        c.connect(broker.host, broker.port, keepalive=30)
        c.loop_start()

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) != 3:
            return
        thing, kind = parts[1], parts[2]
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if kind == "status":
                self.status.append((time.monotonic(), thing, bool(doc.get("connected")), bool(msg.retain)))
            else:
                recs = doc if isinstance(doc, list) else [doc]
                seqs = [r["seq"] for r in recs if isinstance(r, dict) and "seq" in r]
                self.seqs.setdefault(thing, []).extend(seqs)
                now, arrived = time.monotonic(), self.arrived.setdefault(thing, {})
                for q in seqs:
                    arrived.setdefault(q, now)

    def reconnected(self, thing, after):
        with self.lock:
            for t, th, up, retained in self.status:
                if th == thing and up and not retained and t >= after:
                    return t
        return None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
