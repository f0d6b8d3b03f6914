"""Acceptance checks for one board on the bench, before it leaves it:

    make test-hw PORT=/dev/ttyUSB0            # or: .venv/bin/pytest tests/hardware --port PORT
    make test-hw PORT=/dev/ttyUSB0 CONNECT=1  # also a TLS connection from the board

The board holds the firmware (`edgeshadow deploy`), its config and its certificates
(`edgeshadow inject`). Collected only when --port is given; `make test` runs them against a
virtual board (tests/host/test_hardware_tier.py) so they keep working without hardware.
"""
import datetime
import json

import pytest

from host_tools import FIRMWARE_DIR
from host_tools.bench import check as bench
from host_tools.device.board_check import check_config
from host_tools.device.deploy import firmware_version
from host_tools.errors import EdgeshadowError
from host_tools.device.inject import BOARD_CA, BOARD_CERT, BOARD_KEY, check_connect
from host_tools.device.link import BoardLink


@pytest.fixture(scope="module")
def link(request):
    port = request.config.getoption("--port")
    if not port:
        pytest.skip("the hardware tier needs a board: pass --port PORT (make test-hw PORT=...)")
    with BoardLink(port) as link:
        yield link
        try:  # the board leaves the bench as it came: running its firmware
            link.soft_reset()
        except EdgeshadowError:
            pass


@pytest.fixture(scope="module")
def config(link):
    try:
        cfg = json.loads(link.read_file("/config.json"))
    except EdgeshadowError as e:
        pytest.fail(f"no readable /config.json on the board ({e}): run `edgeshadow deploy --config FILE`")
    return cfg


def test_the_firmware_of_this_checkout_boots(link):
    out = link.soft_reset()
    assert link.banner, f"no firmware banner after a soft reset: {out[-300:]!r}"
    want = firmware_version(FIRMWARE_DIR)
    assert link.banner["version"] == want, (
        f"the board runs firmware v{link.banner['version']}, this checkout is v{want}: "
        f"run `edgeshadow deploy --port PORT`")


def test_the_runtime_is_what_the_firmware_is_tested_against(link):
    """What differs between the board and the unix ports: the time epoch, the tick period, the
    float width and the free heap after boot. The firmware and tests/firmware (run on the
    ESP32-like runtime) assume an ESP32's values; a board that differs is named here."""
    out = link.exec("import gc, sys, time\ngc.collect()\n"
                    "print(time.gmtime(0)[0], time.ticks_add(0, -1) + 1, 1.0 + 1e-8 == 1.0, "
                    "gc.mem_free() + gc.mem_alloc(), gc.mem_free(), sys.maxsize, sys.platform)")
    epoch, period, single, heap, free, maxsize, platform = out.split()[-7:]
    if platform == "linux" and int(maxsize) > 2 ** 31:
        pytest.skip("a virtual board on PyPI's 64-bit unix port, not an ESP32 build: these checks apply "
                    "to real boards and to `edgeshadow sim --runtime esp32like`")
    assert epoch == "2000", f"time counts from {epoch}, an ESP32 from 2000 (compat.EPOCH_OFFSET)"
    assert int(period) == 2 ** 30, f"ticks_ms wraps at {period}, an ESP32's at 2^30"
    assert single == "True", "floats are not single precision: not an ESP32 build"
    assert int(maxsize) == 2 ** 31 - 1, "not a 32-bit port"
    from host_tools.sim import runtimes
    print(f"GC heap {heap} B, {free} B free after boot (firmware budget {runtimes.BUDGET} B)")
    assert int(heap) >= runtimes.BUDGET, f"a GC heap of {heap} B is below the firmware's budget"


def test_the_config_is_valid_and_fits_the_board(link, config):
    from edge import config as edge_config
    try:
        edge_config.load(config)
    except edge_config.ConfigError as e:
        pytest.fail(f"/config.json: {e}")
    board = json.loads(link.read_file("/board.json"))
    assert check_config(config, board) == [], f"/config.json does not fit board {board.get('name')}"
    link.soft_reset()
    assert link.banner["thing"] == config["thing"]


def test_the_certificate_is_this_things_and_valid(link, config):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from host_tools.cloud.certs import AWS_CONSOLE_CN
    try:
        names = {name for name, _, _ in link.ls("/certs")}
    except EdgeshadowError:
        names = set()
    missing = [p for p in (BOARD_CERT, BOARD_KEY, BOARD_CA) if p.rsplit("/", 1)[1] not in names]
    assert not missing, f"missing on the board: {', '.join(missing)}: run `edgeshadow inject`"
    cert = x509.load_der_x509_certificate(link.read_file(BOARD_CERT))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn in (config["thing"], AWS_CONSOLE_CN), \
        f"{BOARD_CERT} is for {cn!r}, the config for {config['thing']!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc, \
        f"{BOARD_CERT} is valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}"


def test_every_sensor_passes_the_bench(link, request):
    report = bench.run_bench(link, samples=request.config.getoption("--samples"))
    assert report["restart"] == "ok", report["restart"]
    assert report["result"] == "PASS", "\n".join(bench.summary_lines(report))


def test_the_board_opens_a_tls_connection_to_its_endpoint(link, config, request):
    if not request.config.getoption("--connect"):
        pytest.skip("pass --connect (make test-hw CONNECT=1) to try the board's TLS connection")
    ok, line = check_connect(link, config)
    assert ok, line

