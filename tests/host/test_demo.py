"""`edgeshadow demo` as a newcomer runs it: started headless, the fleet read through the monitor's
snapshot, stopped with Ctrl-C, nothing left behind."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def test_demo_starts_shows_three_devices_and_stops_cleanly(tmp_path):
    workdir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "host_tools", "demo", "--headless", "--devices", "3",
           "--interval", "2", "--workdir", str(workdir), "--certs-dir", str(tmp_path / "certs")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        t0 = time.monotonic()
        _wait_for_line(proc, "demo running headless", lines, timeout=120)
        state = json.loads((workdir / "broker" / "broker.json").read_text())
        snap = subprocess.run(
            [sys.executable, "-m", "host_tools", "monitor", "--once", "--json", "--expect", "3",
             "--seconds", "30", "--broker-state", str(workdir / "broker" / "broker.json")],
            cwd=ROOT, capture_output=True, text=True, timeout=90)
        shown_after = time.monotonic() - t0
        assert snap.returncode == 0, snap.stdout + snap.stderr
        devices = json.loads(snap.stdout)["devices"]
        assert sorted(devices) == ["grid-sensor-001", "grid-sensor-002", "grid-sensor-003"]
        for thing, d in devices.items():
            assert d["connected"], thing
            for metric in ("voltage", "current", "temperature", "humidity"):
                assert metric in d["values"], (thing, d["values"])
            assert isinstance(d["alerts"], list)
        print(f"fleet shown {shown_after:.1f} s after start")
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
    with socket.socket() as s:  # the broker's port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", state["port"]))
