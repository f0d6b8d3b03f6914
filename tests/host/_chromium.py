"""Headless Chromium (Debian's `chromium` package) driven over the Chrome DevTools protocol.

    with Chromium(tmp_path) as page:          # pytest.skip()s, naming why, if Chromium cannot run
        page.navigate(url)
        page.wait_for("document.querySelectorAll('#fleet tbody tr').length === 3")
        page.evaluate("document.title")
        page.screenshot(tmp_path / "page.png")

A fresh --user-data-dir per instance, loopback only (the DevTools port is 127.0.0.1:<free>), and
the whole process group (browser, zygote, renderers) is stopped on exit. websocket-client speaks
the DevTools websocket.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0"]


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevToolsError(Exception):
    pass


class Chromium:
    def __init__(self, workdir, width=1280, height=1000, start_timeout=30.0):
        self.workdir = Path(workdir)
        self.size = (width, height)
        self.start_timeout = start_timeout
        self.proc = self.ws = None
        self._id = 0
        self.events = []

    def start(self, skip=True):
        binary = chromium_binary()
        if binary is None:
            return self._cannot("Chromium is not installed (Debian package `chromium`; `make setup` installs it)", skip)
        profile = self.workdir / "chromium-profile"
        shutil.rmtree(profile, ignore_errors=True)
        profile.mkdir(parents=True)
        self.log_path = self.workdir / "chromium.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}",
                                          f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                self.close()
                return self._cannot(f"Chromium did not start here: {' | '.join(tail) or 'no output'}", skip)
            time.sleep(0.05)  # polling for the file Chromium writes once it listens
        port = int(port_file.read_text().split("\n")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        import websocket
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")
        return self

    def _cannot(self, why, skip):
        if skip:
            pytest.skip(why)
        raise DevToolsError(why)

    def call(self, method, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise DevToolsError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def navigate(self, url, timeout=30.0):
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise DevToolsError(f"{url} did not load within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression, await_promise=False):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise DevToolsError(f"{expression[:80]}: {d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def wait_for(self, expression, timeout=30.0):
        """The expression's first truthy value, polled in the page (AssertionError after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"never true within {timeout} s: {expression}")
            time.sleep(0.1)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except OSError:
                pass
            self.ws = None
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            try:  # whatever of its group outlived the browser (zygote, renderers)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
