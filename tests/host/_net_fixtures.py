"""Helpers for the network-layer host tests: the firmware's net modules running inside the real
MicroPython unix port (tests/host/_mpy_client.py), a TCP relay that records the bytes on the wire,
and device DER files made from the test CA.
"""
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from host_tools.cloud import certs

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
CLIENT = Path(__file__).resolve().parent / "_mpy_client.py"


def device_files(env, thing, out_dir, **kw):
    """DER files for the board (root CA, device cert, device key) from the fixture's CA."""
    crt, key = env.device_cert(thing, **kw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ca": out / "root-ca.der", "cert": out / "device.der", "key": out / "device.key.der"}
    paths["ca"].write_bytes(certs.to_der(env.broker.ca_cert))
    paths["cert"].write_bytes(certs.to_der(crt))
    paths["key"].write_bytes(certs.to_der(key))
    return {k: str(v) for k, v in paths.items()}


class Relay:
    """127.0.0.1:<free port> -> target, recording both directions (`up`: client to server)."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.up = bytearray()
        self.down = bytearray()
        self.connections = 0
        self.gate = True                  # False: new connections are closed at once (link down)
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(8)
        self.port = self._srv.getsockname()[1]
        self._socks = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            if not self.gate:
                c.close()
                continue
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            self.connections += 1
            self._socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, self.up), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, self.down), daemon=True).start()

    def _pump(self, a, b, sink):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                with self._lock:
                    sink.extend(data)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Close every relayed connection."""
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._socks = []

    def reset(self):
        with self._lock:
            self.up.clear()
            self.down.clear()

    def close(self):
        self._stop = True
        self._srv.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


class MpyClient:
    """One `micropython _mpy_client.py job.json` process; its stdout lines are collected."""

    def __init__(self, job, workdir):
        self.job_path = Path(workdir) / f"job-{time.monotonic_ns()}.json"
        self.job_path.write_text(json.dumps(job))
        env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware'}:{CLIENT.parent}:.frozen")
        self.proc = subprocess.Popen([str(MICROPYTHON), str(CLIENT), str(self.job_path)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=str(workdir))
        self.lines = []
        self.eof = False
        self.partial = None
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if not line.endswith("\n"):
                self.partial = line  # cut short by a kill: not a whole line
                break
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def wait_line(self, pred, timeout=30):
        """The first output line matching pred; AssertionError (with the output) after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ln in self.lines:
                    if pred(ln):
                        return ln
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError("no matching line from micropython; output:\n" + "\n".join(self.lines[-40:]))
                self._cond.wait(min(left, 0.2))

    def wait(self, timeout=60):
        """Wait for the process to end and its output to be read; returns the exit code."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        return self.proc.returncode

    def output(self):
        with self._cond:
            return "\n".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
