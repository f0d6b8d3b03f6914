"""`edgeshadow inject`.

- Every check runs before a board is opened: bad inputs fail with a clear error and the link
  factory is never called (nothing can have been written).
- The board-side TLS check (`--check-connect`) runs in the real MicroPython unix port with a flash
  folder mounted as `/` (as the virtual board mounts it) against a real Mosquitto with mutual TLS.
- The whole flow against a virtual board (host_tools/sim/board.py + host_tools/device/link.py): inject
  ends only when the board's application announces that it runs with the injected config.
"""
import datetime
import hashlib
import json
import os
import subprocess

import pytest

from host_tools import DATA_DIR, VENV_BIN
from host_tools.cloud import certs
from host_tools.device import inject as lib
from host_tools.cli import main as cli
from host_tools.errors import EdgeshadowError

MICROPYTHON = str(VENV_BIN / "micropython")


def device_config(**over):
    """A whole device config for the virtual board (the bundled one), with `over` laid on it."""
    cfg = json.loads((DATA_DIR / "configs" / "grid-sensor-sim.json").read_text())
    cfg.update(over)
    return cfg


@pytest.fixture
def cd(tmp_path):
    """A certs folder with a local CA and grid-001's files."""
    d = tmp_path / "certs"
    certs.init_ca(d / "ca")
    certs.issue_device("grid-001", d / "grid-001", d / "ca")
    return d


@pytest.fixture
def port(tmp_path):
    p = tmp_path / "fake-tty"  # exists, so only the certificate checks can fail
    p.write_text("")
    return str(p)


def never_opened(port):
    raise AssertionError(f"a board ({port}) was opened although the checks failed")


# -- before any board ---------------------------------------------------------------------------

def test_prepare_makes_der_for_the_board(cd, port):
    plan = lib.prepare("grid-001", port, cd)
    assert list(plan.files) == [lib.BOARD_CERT, lib.BOARD_KEY, lib.BOARD_CA]
    assert plan.files[lib.BOARD_CERT] == certs.to_der(cd / "grid-001" / "device.crt")
    assert plan.files[lib.BOARD_KEY][:1] == b"\x30" and b"PRIVATE" not in plan.files[lib.BOARD_KEY]
    assert plan.files[lib.BOARD_CA] == certs.to_der(cd / "ca" / "ca.crt")


def _mismatch(cd):
    certs.issue_device("other", cd / "other", cd / "ca")
    os.replace(cd / "other" / "device.key", cd / "grid-001" / "device.key")


def _expired(cd):
    certs.issue_device("grid-001", cd / "grid-001", cd / "ca",
                       not_before=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
                       not_after=datetime.datetime(2026, 1, 3, tzinfo=datetime.timezone.utc))


def _other_ca(cd):
    certs.init_ca(cd / "ca2", cn="another CA")
    certs.issue_device("grid-001", cd / "grid-001", cd / "ca2")
    os.replace(cd / "ca" / "ca.crt", cd / "grid-001" / "root-ca.crt")


def _truncated(cd):
    p = cd / "grid-001" / "device.crt"
    p.write_bytes(p.read_bytes()[:200])


def _readable(cd):
    os.chmod(cd / "grid-001" / "device.key", 0o644)


BAD = [(_mismatch, "does not match the certificate"), (_expired, "expired on 2026-01-03"),
       (_other_ca, "does not chain to the root CA"), (_truncated, "truncated PEM certificate"),
       (_readable, "readable by others")]


@pytest.mark.parametrize("spoil,needle", BAD, ids=[f.__name__.strip("_") for f, _ in BAD])
def test_bad_certificates_stop_before_any_board(cd, port, spoil, needle):
    spoil(cd)
    with pytest.raises(EdgeshadowError) as e:
        lib.inject_boards([(port, "grid-001")], cd, link_factory=never_opened)
    assert "nothing was written to any board" in str(e.value) and needle in str(e.value)


def test_unknown_port_and_bad_config_stop_before_any_board(cd, port, tmp_path):
    with pytest.raises(EdgeshadowError) as e:
        lib.inject_boards([("/dev/ttyUSB-nope", "grid-001")], cd, link_factory=never_opened)
    assert "serial port /dev/ttyUSB-nope does not exist" in str(e.value)
    bad = tmp_path / "dev.json"
    bad.write_text("{not json")
    with pytest.raises(EdgeshadowError) as e:
        lib.inject_boards([(port, "grid-001")], cd, config=bad, link_factory=never_opened)
    assert f"config {bad} is not valid JSON" in str(e.value)


def test_one_bad_pair_stops_the_whole_bench(cd, port, tmp_path):
    other_port = tmp_path / "tty2"
    other_port.write_text("")
    with pytest.raises(EdgeshadowError) as e:
        lib.inject_boards([(port, "grid-001"), (str(other_port), "grid-404")], cd, link_factory=never_opened)
    assert "grid-404" in str(e.value) and "grid-001 (" not in str(e.value)
    with pytest.raises(EdgeshadowError, match="given twice"):
        lib.inject_boards([(port, "grid-001"), (port, "grid-001")], cd, link_factory=never_opened)


def test_cli_errors(cd, port, capsys):
    assert cli(["inject", "--port", port, "--thing", "grid-001", "--thing", "b", "--certs-dir", str(cd)]) == 1
    assert "give them in pairs" in capsys.readouterr().err
    _readable(cd)
    assert cli(["inject", "--port", port, "--thing", "grid-001", "--certs-dir", str(cd)]) == 1
    err = capsys.readouterr().err
    assert "readable by others" in err and "BEGIN" not in err


def test_merge_config_keeps_the_board_settings():
    board = {"thing": "old", "interval_s": 5, "mqtt": {"keepalive_s": 90, "endpoint": "broker.lan"}}
    got = lib.merge_config(board, "grid-001", {"mqtt": {"endpoint": "x-ats.iot.eu-west-1.amazonaws.com"}})
    assert got["thing"] == "grid-001" and got["interval_s"] == 5 and got["mqtt"]["keepalive_s"] == 90
    assert got["mqtt"]["endpoint"] == "broker.lan"  # the given/current config wins
    assert got["mqtt"]["cert"] == "/certs/device.der" and got["mqtt"]["key"] == "/certs/device.key.der"
    got = lib.merge_config({}, "grid-001", {"mqtt": {"endpoint": "x-ats.iot.eu-west-1.amazonaws.com",
                                                     "port": 8883}})
    assert got["mqtt"]["endpoint"].startswith("x-ats") and got["mqtt"]["port"] == 8883
    assert board["thing"] == "old"  # not changed in place


# -- the board-side TLS check, in real MicroPython against real Mosquitto -----------------------

class MicroPythonOnFlash:
    """Runs board-side code in the real MicroPython unix port with `flash` mounted as `/`.
    Only `exec` is needed by check_connect; the rest of BoardLink is tested on the virtual board."""

    def __init__(self, flash):
        self.flash = flash

    def exec(self, code):
        prelude = f"import vfs\nvfs.umount('/')\nvfs.mount(vfs.VfsPosix({str(self.flash)!r}), '/')\n"
        out = subprocess.run([MICROPYTHON, "-c", prelude + code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout


def flash_for(tmp_path, plan, endpoint, port):
    flash = tmp_path / "flash"
    (flash / "certs").mkdir(parents=True, exist_ok=True)
    for path, data in plan.files.items():
        (flash / path.lstrip("/")).write_bytes(data)
    cfg = lib.merge_config({"mqtt": {"endpoint": endpoint, "port": port}}, plan.thing)
    (flash / "config.json").write_text(json.dumps(cfg))
    return MicroPythonOnFlash(flash), cfg


@pytest.fixture
def broker(tmp_path, cd):
    from host_tools.cloud.broker import Broker
    with Broker(tmp_path / "broker", cd / "ca") as b:
        yield b


def test_check_connect_ok_and_in_words(tmp_path, cd, port, broker):
    plan = lib.prepare("grid-001", port, cd)
    link, cfg = flash_for(tmp_path, plan, "localhost", broker.port)
    ok, line = lib.check_connect(link, cfg)
    assert ok, line
    assert line.startswith(f"TLS to localhost:{broker.port}: ok (handshake ")

    # the board trusts another root CA: the server's certificate is refused, in words
    certs.init_ca(cd / "ca2")
    (tmp_path / "flash" / "certs" / "root-ca.der").write_bytes(certs.to_der(cd / "ca2" / "ca.crt"))
    ok, line = lib.check_connect(link, cfg)
    assert not ok and "not signed by /certs/root-ca.der" in line, line

    # the device certificate is from a CA the broker does not know: the broker refuses the handshake
    certs.issue_device("grid-001", cd / "rogue", cd / "ca2")
    (tmp_path / "flash" / "certs" / "root-ca.der").write_bytes(plan.files[lib.BOARD_CA])
    (tmp_path / "flash" / "certs" / "device.der").write_bytes(certs.to_der(cd / "rogue" / "device.crt"))
    (tmp_path / "flash" / "certs" / "device.key.der").write_bytes(certs.to_der(cd / "rogue" / "device.key"))
    ok, line = lib.check_connect(link, cfg)
    assert not ok and ("refused the handshake" in line or "closed the connection" in line), line


def test_check_connect_nothing_listening_and_no_endpoint(tmp_path, cd, port):
    from host_tools.cloud.broker import free_port
    plan = lib.prepare("grid-001", port, cd)
    free = free_port()
    link, cfg = flash_for(tmp_path, plan, "localhost", free)
    ok, line = lib.check_connect(link, cfg)
    assert not ok and f"TLS to localhost:{free} failed: nothing listens there" in line, line
    link, cfg = flash_for(tmp_path, plan, None, 8883)
    ok, line = lib.check_connect(link, cfg)
    assert not ok and "no mqtt.endpoint" in line


def test_tls_error_words():
    assert "not signed" in lib.tls_error_words("ValueError('The certificate is not correctly signed by the trusted CA')")
    assert "not trusted" in lib.tls_error_words("OSError(-9984, 'MBEDTLS_ERR_X509_CERT_VERIFY_FAILED')")
    assert "memory" in lib.tls_error_words("OSError(-17040,)")
    assert lib.tls_error_words("OSError(-1,)") == "the TLS connection failed"


# -- against a virtual board --------------------------------------------------------------------

@pytest.fixture
def vboard(tmp_path):
    from host_tools.sim.board import VirtualBoard
    with VirtualBoard(tmp_path / "vb", thing="grid-001", board="sim") as vb:
        yield vb


# written by the running firmware itself at any moment, never by inject
FIRMWARE_RUNTIME = ("boot_count", "spool/")


def snapshot(flash):
    return {str(p.relative_to(flash)): p.read_bytes() for p in sorted(flash.rglob("*"))
            if p.is_file() and not str(p.relative_to(flash)).startswith(FIRMWARE_RUNTIME)}


def test_inject_into_a_virtual_board(cd, vboard, capsys):
    flash = vboard.flash_dir
    (flash / "config.json").write_text(json.dumps(device_config(
        thing="old", interval_s=7, mqtt={"endpoint": "localhost", "port": 1})))
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--certs-dir", str(cd)]) == 0
    out, err = capsys.readouterr()
    assert "grid-001 -> " in out and ": ok: injected and running (v" in out and "BEGIN" not in out
    assert "staged /certs/device.der" in err and "staged" not in out   # progress on stderr
    assert (flash / "certs" / "device.der").read_bytes() == certs.to_der(cd / "grid-001" / "device.crt")
    assert (flash / "certs" / "device.key.der").read_bytes() == certs.to_der(cd / "grid-001" / "device.key")
    assert (flash / "certs" / "root-ca.der").read_bytes() == certs.to_der(cd / "ca" / "ca.crt")
    cfg = json.loads((flash / "config.json").read_text())
    assert cfg["thing"] == "grid-001" and cfg["interval_s"] == 7 and cfg["mqtt"]["endpoint"] == "localhost"
    assert not [p for p in flash.rglob("*.new")]


@pytest.mark.parametrize("spoil,needle", BAD, ids=[f.__name__.strip("_") for f, _ in BAD])
def test_bad_inputs_leave_the_virtual_board_intact(cd, vboard, spoil, needle, capsys):
    flash = vboard.flash_dir
    (flash / "certs").mkdir(exist_ok=True)
    for name in ("device.der", "device.key.der", "root-ca.der"):
        (flash / "certs" / name).write_bytes(b"previous " + name.encode())
    (flash / "config.json").write_text('{"thing": "grid-001"}')
    before = snapshot(flash)
    spoil(cd)
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--certs-dir", str(cd)]) == 1
    assert needle in capsys.readouterr().err
    assert snapshot(flash) == before


def test_check_connect_from_a_virtual_board(tmp_path, cd, vboard, broker, capsys):
    cfg = tmp_path / "dev.json"
    cfg.write_text(json.dumps(device_config(mqtt={"endpoint": "localhost", "port": broker.port})))
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--config", str(cfg),
                "--check-connect", "--certs-dir", str(cd)]) == 0
    assert f"TLS to localhost:{broker.port}: ok" in capsys.readouterr().out


def test_whole_local_flow_board_connects_and_publishes(tmp_path, capsys):
    """certs ca init -> certs device -> inject into a virtual board -> the firmware boots, connects
    to the local broker with the injected certificate and publishes on its own topics."""
    from _broker_fixtures import MqttProbe
    from host_tools.cloud.broker import MONITOR_CN, local_stack
    from host_tools.device.link import BoardLink
    from host_tools.sim.board import VirtualBoard

    cdir = tmp_path / "certs"
    assert cli(["certs", "ca", "init", "--certs-dir", str(cdir)]) == 0
    assert cli(["certs", "device", "grid-001", "--certs-dir", str(cdir)]) == 0
    with local_stack(tmp_path / "broker", cdir / "ca") as (broker, _service, _state):
        # the endpoint as provision would leave it; inject fills it into the board's own config
        (cdir / "grid-001" / "config.json").write_text(
            json.dumps({"mqtt": {"endpoint": "localhost", "port": broker.port}}))
        with VirtualBoard(tmp_path / "vb", thing="grid-001") as vb:
            assert cli(["inject", "--port", vb.port, "--thing", "grid-001", "--check-connect",
                        "--certs-dir", str(cdir)]) == 0
            assert f"TLS to localhost:{broker.port}: ok" in capsys.readouterr().out
            crt, key = broker.client_cert(MONITOR_CN)
            with MqttProbe(broker.host, broker.port, broker.ca_cert, crt, key, timeout=10).connect() as probe:
                probe.subscribe("dt/grid-001/#", "$aws/things/grid-001/shadow/#")
                with BoardLink(vb.port) as link:
                    assert "thing=grid-001" in link.soft_reset()
                msg = probe.wait_for(lambda m: "grid-001" in m.topic, timeout=60)
                assert msg.topic.startswith(("$aws/things/grid-001/shadow/", "dt/grid-001/"))


# -- issue 12: no wrong success, one validator, no silent wait ----------------------------------

def test_a_config_the_firmware_would_refuse_is_refused_before_any_board(cd, vboard, tmp_path, capsys):
    """`inject --config` with interval_s "ten" exited 0 and the board sat at the REPL."""
    flash = vboard.flash_dir
    before = snapshot(flash)
    cfg = tmp_path / "dev.json"
    cfg.write_text(json.dumps(device_config(interval_s="ten")))
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--config", str(cfg),
                "--certs-dir", str(cd)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"edgeshadow: error: nothing was written to any board: grid-001 ({vboard.port}): "
                       f"{cfg}: 1 problem: interval_s: must be a number >= 1")
    assert snapshot(flash) == before


def test_inject_waits_for_the_application_to_run_the_new_config(cd, vboard, tmp_path, capsys):
    since = len(vboard.log())
    cfg = tmp_path / "dev.json"
    cfg.write_text(json.dumps(device_config(interval_s=3)))
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--config", str(cfg),
                "--certs-dir", str(cd), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [board] = doc["boards"]
    written = hashlib.sha256((vboard.flash_dir / "config.json").read_bytes()).hexdigest()
    assert doc["ok"] and board["ok"] and board["running"]["config"] == written[:12]
    assert board["running"]["thing"] == "grid-001"
    vboard.wait_for_log(f"edgeshadow: running v{board['running']['version']} thing=grid-001 "
                        f"config={written[:12]}", start=since)


def test_a_board_whose_application_does_not_start_fails_with_its_reason(cd, tmp_path, capsys):
    from host_tools.sim.board import VirtualBoard
    from tests.host.conftest import firmware_without_app
    firmware_without_app(tmp_path / "noapp")
    with VirtualBoard(tmp_path / "noapp", thing="grid-001") as vb:
        port = vb.port
        assert cli(["inject", "--port", port, "--thing", "grid-001", "--certs-dir", str(cd)]) == 1
    assert capsys.readouterr().out.strip() == (
        f"grid-001 -> {port}: FAILED: the board on {port} did not start its application: there is "
        f"no /app.py on it (deploy the firmware)")


def test_a_config_for_another_board_is_refused_on_the_board_before_writing(cd, vboard, tmp_path, capsys):
    flash = vboard.flash_dir
    before = snapshot(flash)
    cfg = tmp_path / "dev.json"
    cfg.write_text(json.dumps(device_config(board="esp32-devkitc")))
    assert cli(["inject", "--port", vboard.port, "--thing", "grid-001", "--config", str(cfg),
                "--certs-dir", str(cd)]) == 1
    out = capsys.readouterr().out
    assert "the config is for board 'esp32-devkitc', but the board on" in out
    assert "is a 'sim' (its /board.json); nothing was written" in out
    assert snapshot(flash) == before


def test_an_oversized_config_is_refused_at_once(cd, port, tmp_path, capsys):
    """A 50 MB config took 46 s to fail; now the file's size is enough."""
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(50 << 20)
    with pytest.raises(EdgeshadowError, match=rf"config {big} is 50.0 MB; a device config is at most "
                                              rf"8192 bytes of JSON"):
        lib.inject_boards([(port, "grid-001")], cd, config=big, link_factory=never_opened)
    assert cli(["inject", "--port", port, "--thing", "grid-001", "--config", str(big),
                "--certs-dir", str(cd)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2  # "checking ..." and the error


def test_several_boards_a_progress_bar_and_one_json_document(cd, tmp_path, capsys):
    from host_tools.sim.board import VirtualBoard
    certs.issue_device("grid-002", cd / "grid-002", cd / "ca")
    with VirtualBoard(tmp_path / "b1", thing="grid-001") as b1, \
            VirtualBoard(tmp_path / "b2", thing="grid-002") as b2:
        code = cli(["inject", "--port", b1.port, "--thing", "grid-001", "--port", b2.port,
                    "--thing", "grid-002", "--certs-dir", str(cd), "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 0 and doc["ok"]
    assert [(b["thing"], b["ok"], b["running"]["thing"]) for b in doc["boards"]] == [
        ("grid-001", True, "grid-001"), ("grid-002", True, "grid-002")]
    assert "injecting (2 boards) ..." in err and "injecting: 2/2 grid-002" in err
