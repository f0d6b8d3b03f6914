"""`edgeshadow sim` and `edgeshadow logs` as users run them."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.host.conftest import MPREMOTE, processes_of

ROOT = Path(__file__).resolve().parents[2]
EDGESHADOW = [sys.executable, "-m", "host_tools.cli"]


def test_sim_starts_boards_prints_ports_and_stops_on_ctrl_c(tmp_path):
    proc = subprocess.Popen(EDGESHADOW + ["sim", "--devices", "2", "--workdir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().split() for _ in range(2)]
        assert [l[0] for l in lines] == ["sim-001", "sim-002"]
        for thing, port, *_ in lines:
            out = subprocess.run([MPREMOTE, "connect", port, "exec",
                                  "import json; print(json.load(open('/config.json'))['thing'])"],
                                 capture_output=True, text=True, timeout=60)
            assert out.stdout.strip() == thing, out
        assert processes_of(tmp_path / "sim-001" / "sim")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    for thing in ("sim-001", "sim-002"):
        assert processes_of(tmp_path / thing / "sim") == []


def test_sim_rejects_bad_arguments(tmp_path):
    p = subprocess.run(EDGESHADOW + ["sim", "--devices", "0", "--workdir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "--devices must be at least 1" in p.stderr
    p = subprocess.run(EDGESHADOW + ["sim", "--scenario", "nosuch", "--workdir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "nosuch" in p.stderr
    assert processes_of(tmp_path / "sim-001" / "sim") == []


def test_logs_follows_output_without_interrupting_the_firmware(virtual_board, tmp_path):
    flash = tmp_path / "log-001" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        "import time\nn = 0\nwhile True:\n    n += 1\n    print('tick', n)\n    time.sleep(0.05)\n")
    vb = virtual_board("log-001", firmware=False)
    vb.wait_for_log("tick 2")
    p = subprocess.run(EDGESHADOW + ["logs", "--port", vb.port, "--seconds", "0.6"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ticks = [int(l.split()[1]) for l in p.stdout.splitlines() if l.startswith("tick ")]
    assert len(ticks) >= 3 and ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert "KeyboardInterrupt" not in vb.log() and vb.boots == 1
    p = subprocess.run(EDGESHADOW + ["logs", "--port", "/dev/ttyUSB9", "--seconds", "1"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "could not open /dev/ttyUSB9" in p.stderr  # cannot test: no board


def test_sim_bootloader_gives_a_virtual_rom_that_flash_writes_to(tmp_path):
    from host_tools.cli import main
    image = tmp_path / "app.bin"
    proc = subprocess.Popen(EDGESHADOW + ["sim", "--bootloader", "--workdir", str(tmp_path / "run"),
                                          "--image", str(image)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        name, port, _, link = proc.stdout.readline().split()
        assert name == "rom-001" and port.startswith("/dev/pts/")
        assert link.rstrip(")") == str(tmp_path / "run" / "rom-001" / "tty")
        assert os.path.realpath(link.rstrip(")")) == port
        flashed = subprocess.run(EDGESHADOW + ["flash", "--board", "esp32-devkitc", "--port", link.rstrip(")"),
                                 "--firmware", str(image), "--json"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert flashed.returncode == 0, flashed.stderr
        [result] = json.loads(flashed.stdout)["results"]
        assert result["ok"] and result["chip"] == "esp32" and result["bytes_written"] == image.stat().st_size
        second = subprocess.run(EDGESHADOW + ["sim", "--bootloader", "--workdir", str(tmp_path / "run")],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        assert f"virtual ROM folder {tmp_path / 'run' / 'rom-001'} is in use by PID {proc.pid}" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (tmp_path / "run" / "rom-001" / "tty").exists()


def test_a_second_sim_on_the_same_folder_is_refused_and_the_first_runs_on(tmp_path):
    first = subprocess.Popen(EDGESHADOW + ["sim", "--workdir", str(tmp_path)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        thing, port, *_ = first.stdout.readline().split()
        second = subprocess.run(EDGESHADOW + ["sim", "--workdir", str(tmp_path)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 3, second.stderr
        assert second.stderr.strip().endswith(
            f"edgeshadow: error: board folder {tmp_path / 'sim-001'} is in use by PID {first.pid} "
            "(edgeshadow sim) (wait for it to finish or stop it)")
        out = subprocess.run([MPREMOTE, "connect", port, "exec", "print('still here')"],
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "still here", out
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert processes_of(tmp_path / "sim-001" / "sim") == []


def test_sim_image_needs_bootloader(tmp_path):
    p = subprocess.run(EDGESHADOW + ["sim", "--image", str(tmp_path / "x.bin"), "--workdir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip() == (
        "edgeshadow: error: --image goes with --bootloader (an image to flash onto the virtual ROM)")


def test_logs_says_what_it_follows_before_anything_arrives():
    """A port that stays silent: logs names what it waits on at once (stderr), instead of nothing."""
    import pty
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    try:
        p = subprocess.run(EDGESHADOW + ["logs", "--port", name, "--seconds", "0.5"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert p.stderr.splitlines()[0] == (f"following {name} at 115200 baud (nothing is sent "
                                        "to the board); Ctrl-C stops")
