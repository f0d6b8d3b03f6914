"""Locks between edgeshadow commands: a port and a board folder are used by one command at a time."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.cli import main
from host_tools.errors import EdgeshadowError
from host_tools.locks import folder_lock, port_lock
from host_tools.sim.board import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
EDGESHADOW = [sys.executable, "-m", "host_tools.cli"]


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def holder(code):
    """Another process that takes a lock (python code ending in `lock`), says so and waits."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time\n" + code +
                             "\nlock.acquire(); print('held', flush=True); sys.stdin.read()"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def wait_until_locked(lock, deadline_s=30):
    """Wait until someone else holds `lock` (a command starting up takes it)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            lock.acquire()
            lock.release()
        except EdgeshadowError:
            return
        assert time.monotonic() < deadline, f"nobody took {lock.what}"
        time.sleep(0.02)


def test_second_holder_of_a_port_gets_the_first_ones_pid(pty):
    proc = holder(f"from host_tools.locks import port_lock; lock = port_lock({pty!r})")
    try:
        with pytest.raises(EdgeshadowError) as e:
            port_lock(pty).acquire()
        assert e.value.exit_code == 3
        assert str(e.value).startswith(f"port {pty} is in use by PID {proc.pid} (-c)")
    finally:
        proc.kill()
        proc.wait()
    with port_lock(pty) as lock:           # a killed holder leaves nothing behind
        assert lock.held


def test_a_symlink_and_its_port_share_one_lock(pty, tmp_path):
    (tmp_path / "tty").symlink_to(pty)
    with port_lock(pty):
        with pytest.raises(EdgeshadowError, match=f"port {tmp_path / 'tty'} is in use by PID {os.getpid()}"):
            port_lock(tmp_path / "tty").acquire()


def test_logs_and_deploy_on_one_port_do_not_interleave(pty, capsys):
    logs = subprocess.Popen(EDGESHADOW + ["logs", "--port", pty], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_locked(port_lock(pty))
        assert main(["deploy", "--port", pty]) == 3
        assert capsys.readouterr().err.strip() == (
            f"edgeshadow: error: port {pty} is in use by PID {logs.pid} (edgeshadow logs) "
            "(wait for it to finish or stop it)")
        p = subprocess.run(EDGESHADOW + ["logs", "--port", pty, "--seconds", "1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 3 and f"is in use by PID {logs.pid} (edgeshadow logs)" in p.stderr
    finally:
        logs.send_signal(signal.SIGINT)
        logs.communicate(timeout=30)


def test_two_virtual_boards_on_one_folder_are_refused(tmp_path):
    proc = holder(f"from host_tools.locks import folder_lock; lock = folder_lock({str(tmp_path)!r}, 'board folder')")
    try:
        vb = VirtualBoard(tmp_path, firmware=False)
        with pytest.raises(EdgeshadowError) as e:
            vb.start()
        assert e.value.exit_code == 3
        assert str(e.value).startswith(f"board folder {tmp_path} is in use by PID {proc.pid}")
        assert not (tmp_path / "flash").exists()      # nothing of the running board was touched
        assert vb.proc is None
    finally:
        proc.kill()
        proc.wait()


def test_demo_on_a_folder_in_use_starts_nothing(tmp_path, capsys):
    with folder_lock(tmp_path / "demo", "demo folder"):
        code = main(["demo", "--workdir", str(tmp_path / "demo"), "--headless", "--seconds", "1"])
    assert code == 3
    assert f"demo folder {tmp_path / 'demo'} is in use by PID {os.getpid()}" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [".edgeshadow.lock"]


def test_a_released_folder_lock_can_be_taken_again(tmp_path):
    lock = folder_lock(tmp_path / "b", "board folder")
    with lock:
        assert (tmp_path / "b" / ".edgeshadow.lock").read_text().split()[0] == str(os.getpid())
    with folder_lock(tmp_path / "b", "board folder") as again:
        assert again.held
