"""The hardware tier (tests/hardware, `make test-hw PORT=...`) run against a virtual board, so
its checks keep working where no ESP32 is plugged in: a board set up as a user would (certs,
inject with the local broker's endpoint) passes all of them, and one with a wrong certificate
fails the certificate check naming both things."""
import json
import subprocess
import sys

import pytest

from host_tools.cloud import certs

from host_tools.sim import runtimes
from host_tools.cli import main as cli
from host_tools.sim.board import VirtualBoard

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)
# The tier runs in the board's own heap (a WROOM's 112,000 B): the bench's board side is the compiled
# firmware module benchside (about 16.5 KB with a session of four metrics, where the script strings
# compiled on the board took 41.9 KB).
TIER_HEAP = None


def run_tier(port, *extra):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/hardware",
                           "--port", port, "--samples", "5", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_a_board_set_up_as_a_user_would_passes_every_check(tmp_path):
    from host_tools.cloud.broker import local_stack
    cdir = tmp_path / "certs"
    certs.init_ca(cdir / "ca")
    certs.issue_device("bench-001", cdir / "bench-001", cdir / "ca")
    # the ESP32-like runtime: the tier checks an ESP32's epoch, tick period, float width and heap
    runtime = "esp32like" if runtimes.available("esp32like") else "unix"
    with local_stack(tmp_path / "broker", cdir / "ca") as (broker, _service, _state), \
            VirtualBoard(tmp_path / "vb", thing="bench-001", scenario="nominal", runtime=runtime,
                         heap=TIER_HEAP if runtime == "esp32like" else None) as vb:
        # the endpoint as provision leaves it; inject fills it into the board's own config
        (cdir / "bench-001" / "config.json").write_text(
            json.dumps({"mqtt": {"endpoint": "localhost", "port": broker.port}}))
        assert cli(["inject", "--port", vb.port, "--thing", "bench-001", "--certs-dir", str(cdir)]) == 0
        r = run_tier(vb.port, "--connect")
        if runtime == "unix":  # 64-bit doubles: the runtime check names what is not an ESP32
            assert "6 passed" not in r.stdout and "not single precision" in r.stdout, r.stdout[-3000:]
        else:
            assert r.returncode == 0 and "6 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_a_certificate_for_another_thing_fails_its_check(tmp_path):
    cdir = tmp_path / "certs"
    certs.init_ca(cdir / "ca")
    certs.issue_device("bench-002", cdir / "bench-002", cdir / "ca")
    runtime = "esp32like" if runtimes.available("esp32like") else "unix"
    with VirtualBoard(tmp_path / "vb", thing="bench-001", scenario="nominal", runtime=runtime,
                         heap=TIER_HEAP if runtime == "esp32like" else None) as vb:
        (vb.flash_dir / "certs").mkdir(exist_ok=True)
        for name, src in (("device.der", "device.crt"), ("device.key.der", "device.key")):
            (vb.flash_dir / "certs" / name).write_bytes(certs.to_der(cdir / "bench-002" / src))
        (vb.flash_dir / "certs" / "root-ca.der").write_bytes(certs.to_der(cdir / "ca" / "ca.crt"))
        r = run_tier(vb.port)
        want = "1 failed, 4 passed, 1 skipped" if runtime == "esp32like" else "2 failed, 3 passed, 1 skipped"
        assert r.returncode == 1 and want in r.stdout, r.stdout[-3000:]
        assert "/certs/device.der is for 'bench-002', the config for 'bench-001'" in r.stdout


def test_without_port_the_tier_is_skipped_with_the_reason():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/hardware"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "6 skipped" in r.stdout and "--port" in r.stdout, r.stdout
