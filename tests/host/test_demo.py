"""`edgeshadow demo` as a newcomer runs it: started headless, the fleet read through the monitor's
snapshot and seen on the dashboard in headless Chromium, stopped with Ctrl-C, nothing left behind."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.history import query as history
from host_tools.history.store import HistoryStore

ROOT = Path(__file__).resolve().parents[2]


def _processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def _wait_for_line(proc, text, lines, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"demo did not print {text!r} within {timeout} s:\n{''.join(lines)}")


class Demo:
    def __init__(self, workdir, proc, lines):
        self.workdir, self.proc, self.lines = workdir, proc, lines
        self.t0 = time.monotonic()

    @property
    def state_file(self):
        return self.workdir / "broker" / "broker.json"

    @property
    def db(self):
        return self.workdir / "broker" / "historian.sqlite"

    def url(self):
        found = [l.split("dashboard: ", 1)[1].strip() for l in self.lines if l.startswith("dashboard: ")]
        assert found, "the demo printed no dashboard URL"
        return found[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One headless demo for this module's tests; stopped with Ctrl-C, which must leave nothing."""
    tmp_path = tmp_path_factory.mktemp("demo")
    workdir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "host_tools", "demo", "--headless", "--devices", "3",
           "--interval", "2", "--workdir", str(workdir), "--certs-dir", str(tmp_path / "certs")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        _wait_for_line(proc, "demo running headless", lines, timeout=120)
        yield Demo(workdir, proc, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
        lines.append(rest or "")
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "demo stopped; nothing left running" in output
    assert _processes_mentioning(str(workdir)) == []


# -- bad input and Ctrl-C while it starts ---------------------------------------------------------

def _demo_cmd(tmp_path, *extra):
    return [sys.executable, "-m", "host_tools", "demo", "--headless", "--devices", "2",
            "--workdir", str(tmp_path / "demo"), "--certs-dir", str(tmp_path / "certs"), *extra]


def test_demo_refuses_a_config_every_board_would_refuse_before_starting(tmp_path):
    run = subprocess.run(_demo_cmd(tmp_path, "--interval", "0"), cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.strip() == "edgeshadow: error: the boards would refuse this config: --interval: must be a number >= 1"
    assert not (tmp_path / "demo").exists() and not (tmp_path / "certs").exists()  # nothing started


def test_ctrl_c_while_injecting_stops_at_once_with_one_line(tmp_path):
    proc = subprocess.Popen(_demo_cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        _wait_for_line(proc, "staged /certs/", lines, timeout=120)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        rest, _ = proc.communicate(timeout=30)  # the deadline: today it stops within about 2 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    assert "Traceback" not in output and output.rstrip().endswith("edgeshadow: interrupted"), output
    assert _processes_mentioning(str(tmp_path / "demo")) == []


def test_a_board_that_refuses_its_config_at_boot_fails_the_demo(tmp_path):
    from host_tools.demo import boot_boards, device_config
    from host_tools.device.link import BoardLink
    from host_tools.errors import EdgeshadowError
    from host_tools.sim.board import VirtualBoard
    with VirtualBoard(tmp_path / "board", thing="grid-sensor-009", scenario="nominal") as vb:
        cfg = dict(device_config(8883, 5), thing="grid-sensor-009", interval_s="ten")
        with BoardLink(vb.port) as link:  # as inject writes it: the running app stopped first
            link.write_file_atomic("/config.json", json.dumps(cfg).encode())
        with pytest.raises(EdgeshadowError) as e:
            boot_boards([vb], say=lambda m: None, timeout=60)
    assert "grid-sensor-009 refused its config at boot: interval_s: must be a number >= 1" in str(e.value)


# -- the running demo (its module fixture starts at the first of these: the tests above run before it,
# so the demo runs only while it is looked at) ----------------------------------------------------

def test_demo_starts_shows_three_devices(demo):
    snap = subprocess.run(
        [sys.executable, "-m", "host_tools", "monitor", "--once", "--json", "--expect", "3",
         "--seconds", "30", "--broker-state", str(demo.state_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=90)
    shown_after = time.monotonic() - demo.t0
    assert snap.returncode == 0, snap.stdout + snap.stderr
    devices = json.loads(snap.stdout)["devices"]
    assert sorted(devices) == ["grid-sensor-001", "grid-sensor-002", "grid-sensor-003"]
    for thing, d in devices.items():
        assert d["connected"], thing
        for metric in ("voltage", "current", "temperature", "humidity"):
            # a value, or a failed read named by its status (the scenario's anomalies can exceed
            # what the simulated sensor measures: out_of_physical_range)
            assert metric in d["values"] or metric in d["status"], (thing, d["values"], d["status"])
        assert isinstance(d["alerts"], list)
    print(f"fleet shown {shown_after:.1f} s after start")



def _plotted_and_stored(page, db, thing, metric):
    """(last point of the plotted series, last reading the historian stored), read back to back."""
    x, y = page.evaluate(f"(() => {{ const d = document.getElementById('plot-{metric}').data; "
                         "const s = d[d.length - 1]; return [s.x[s.x.length - 1], s.y[s.y.length - 1]]; })()")
    with HistoryStore(db, readonly=True) as store:
        ts, v = history.last_reading(store, thing, metric)
    return (round(x / 1000.0, 3), y), (round(ts, 3), v)


def test_dashboard_in_chromium_plots_what_the_historian_stored(demo, tmp_path):
    from _chromium import Chromium
    url = demo.url()
    assert url.startswith("http://127.0.0.1:")
    with Chromium(tmp_path) as page:
        page.navigate(url)
        rows = page.wait_for("(() => { const r = [...document.querySelectorAll('#fleet tbody tr[data-thing]')]"
                             ".map(t => t.dataset.thing); return r.length === 3 && r; })()", timeout=60)
        assert rows == ["grid-sensor-001", "grid-sensor-002", "grid-sensor-003"]
        page.wait_for("[...document.querySelectorAll('#fleet tbody tr[data-thing]')].every(tr => "  # at a glance
                      "tr.cells[1].textContent === 'connected' && tr.cells[6].textContent.includes('free'))")
        page.evaluate("document.querySelector('#fleet tr[data-thing=\"grid-sensor-002\"]').click()")
        page.wait_for("document.getElementById('plot-voltage') && document.getElementById('plot-voltage').data"
                      " && document.getElementById('plot-voltage').data.length > 0")
        # both sides move on every 2 s, and a loaded machine can keep the page's live update a
        # point or two behind: the newest plotted point must be a reading the historian stored, and
        # the newest one within 30 s
        deadline = time.monotonic() + 30
        while True:
            plotted, stored = _plotted_and_stored(page, demo.db, "grid-sensor-002", "voltage")
            if plotted == stored or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        with HistoryStore(demo.db, readonly=True) as store:
            kept = {(round(ts, 3), v) for ts, _, _, v, _ in history.readings(store, "grid-sensor-002", "voltage")}
        assert plotted in kept, (plotted, stored)
        page.evaluate("document.querySelector('#ranges button[data-span=\"2592000\"]').click()")  # zoom out
        page.wait_for("document.getElementById('plot-voltage').dataset.resolution === '1h'")
        hourly = page.evaluate("document.getElementById('plot-voltage').data.length")
        assert hourly == 3  # the min..max band behind the hourly mean
        page.evaluate("(() => { const now = Date.now(); Plotly.relayout('plot-voltage', "  # a drag-zoom
                      "{'xaxis.range[0]': now - 600000, 'xaxis.range[1]': now}); })()")
        page.wait_for("document.getElementById('plot-current').dataset.resolution === 'raw'")
        assert page.evaluate("document.getElementById('resolution').textContent") == "resolution raw"  # not live
        assert page.evaluate("document.getElementById('device-name').textContent") == "grid-sensor-002"
        shot = page.screenshot(tmp_path / "dashboard.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")


# after the dashboard: the sag it waits for comes 20 s after boot, meanwhile Chromium worked
def test_the_demo_shows_a_diagnosis_in_its_first_minute(demo):
    """The demo scenario sags the line from 20 s to 50 s after boot: the boards diagnose it."""
    from host_tools.cloud import monitor
    fleet = monitor.Fleet()
    deadline = demo.t0 + 90  # the first minute, and room for a loaded machine
    with monitor.Subscriber(monitor.local_settings(demo.state_file), fleet):
        while True:
            snap = fleet.snapshot()["devices"]
            diagnosed = {t: d["diagnoses"] for t, d in snap.items() if d["diagnoses"]}
            sag = any(x["name"] == "sag" for ds in diagnosed.values() for x in ds)
            if sag or time.monotonic() > deadline:  # a swell from the smartgrid draws may come first
                break
            fleet.changed.wait(0.5)
            fleet.changed.clear()
    assert diagnosed, f"no diagnosis by {time.monotonic() - demo.t0:.0f} s after the start: {snap}"
    assert any(x["name"] == "sag" for ds in diagnosed.values() for x in ds), diagnosed
    print(f"first diagnosis {time.monotonic() - demo.t0:.1f} s after the start: {diagnosed}")
