"""`edgeshadow deploy` against a virtual board (real MicroPython behind a pty, real mpremote)."""
import json
import re
import shutil

import pytest

from host_tools import DATA_DIR, FIRMWARE_DIR
from host_tools.cli import main
from host_tools.device.deploy import deploy, firmware_version, local_files
from host_tools.errors import EdgeshadowError
from host_tools.device.link import BoardLink
from host_tools.sim import runtimes
from host_tools.sim.board import VirtualBoard

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def firmware(tmp_path):
    """A copy of firmware/ the test may change."""
    dst = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


@pytest.fixture
def board(tmp_path):
    """A virtual board with no firmware on it yet, but certificates, config and a spool file."""
    # romfs=0: the stock ESP32 image's layout, the firmware on the filesystem (where the board has a
    # ROMFS partition deploy puts it there: tests/host/test_deploy_romfs.py). From files the firmware
    # needs runtimes.NEEDED_HEAP: at a WROOM's 112,000 B its imports failed now and then (MemoryError
    # in app_boot, 7 of these tests in one make test run), a board with more RAM is what it needs.
    with VirtualBoard(tmp_path / "board", thing="deploy-001", firmware=False, romfs=0,
                      heap=runtimes.NEEDED_HEAP) as vb:
        certs = vb.flash_dir / "certs"
        certs.mkdir(exist_ok=True)
        for name in ("device.der", "device.key.der", "root-ca.der"):
            (certs / name).write_bytes(name.encode() * 10)
        (vb.flash_dir / "spool").mkdir(exist_ok=True)
        (vb.flash_dir / "spool" / "000001.jsonl").write_text('{"ts": 1}\n')
        yield vb


def kept_files(vb):
    names = ["certs/device.der", "certs/device.key.der", "certs/root-ca.der", "config.json",
             "board.json", "spool/000001.jsonl"]
    return {n: (vb.flash_dir / n).read_bytes() for n in names}


def board_tree(vb):
    return sorted(p.relative_to(vb.flash_dir).as_posix() for p in vb.flash_dir.rglob("*")
                  if p.is_file())


def settled(vb, since):
    """Wait until the firmware, started by the deploy's soft reset, runs its application: a
    deploy right behind another then interrupts a running firmware, not one still importing
    (see the closing note of issue 6: a Ctrl-C during that start can leave the virtual board
    deaf)."""
    vb.wait_for_log(": thing ", start=since)


def run_deploy(vb, firmware, **kw):
    since = len(vb.log())
    with BoardLink(vb.port) as link:
        report = deploy(link, firmware, **kw)
    assert report.banner == f"edgeshadow firmware v{firmware_version(firmware)} thing={vb.thing}"
    settled(vb, since)
    return report


def test_deploy_sends_only_what_changed_and_keeps_certs_config_spool(board, firmware):
    kept = kept_files(board)
    local, _ = local_files(firmware)

    first = run_deploy(board, firmware)
    assert sorted(p for p, _ in first.sent) == sorted(local)           # everything
    assert first.skipped == [] and first.removed == []
    for path, data in local.items():
        assert (board.flash_dir / path[1:]).read_bytes() == data
    boots = board.boots

    second = run_deploy(board, firmware)
    assert second.sent == [] and second.removed == []                  # nothing
    assert sorted(second.skipped) == sorted(local)
    assert board.boots > boots                                         # it rebooted and came back

    status = firmware / "edge" / "status.py"
    status.write_text(status.read_text() + "\n# changed by a deploy test\n")
    third = run_deploy(board, firmware)
    assert [p for p, _ in third.sent] == ["/edge/status.py"]           # one file
    assert third.bytes_sent == len(status.read_bytes())
    assert (board.flash_dir / "edge" / "status.py").read_bytes() == status.read_bytes()

    (firmware / "edge" / "obsolete.py").write_text("X = 1\n")
    (firmware / "net" / "old").mkdir()
    (firmware / "net" / "old" / "thing.py").write_text("Y = 2\n")
    fourth = run_deploy(board, firmware)
    assert sorted(p for p, _ in fourth.sent) == ["/edge/obsolete.py", "/net/old/thing.py"]
    (firmware / "edge" / "obsolete.py").unlink()
    shutil.rmtree(firmware / "net" / "old")
    fifth = run_deploy(board, firmware)
    assert fifth.sent == []
    assert fifth.removed == ["/edge/obsolete.py", "/net/old/thing.py", "/net/old/"]
    assert not (board.flash_dir / "edge" / "obsolete.py").exists()
    assert not (board.flash_dir / "net" / "old").exists()

    assert kept_files(board) == kept                                   # untouched throughout


def test_a_folder_the_firmware_no_longer_has_is_removed_but_never_a_users(board, firmware):
    (firmware / "sensors_extra").mkdir()
    (firmware / "sensors_extra" / "probe.py").write_text("P = 1\n")
    (board.flash_dir / "userlib").mkdir()
    (board.flash_dir / "userlib" / "x.py").write_text("Z = 3\n")
    first = run_deploy(board, firmware)
    assert "/sensors_extra/probe.py" in [p for p, _ in first.sent]
    shutil.rmtree(firmware / "sensors_extra")
    second = run_deploy(board, firmware)
    assert second.sent == [] and second.removed == ["/sensors_extra/probe.py", "/sensors_extra/"]
    assert not (board.flash_dir / "sensors_extra").exists()
    assert (board.flash_dir / "userlib" / "x.py").exists()      # deploy never wrote /userlib
    assert run_deploy(board, firmware).removed == []


def test_files_outside_the_firmware_folders_are_never_removed(board, firmware):
    (board.flash_dir / "certs" / "extra.py").write_text("# in /certs\n")
    (board.flash_dir / "notes.txt").write_text("mine\n")
    (board.flash_dir / "userlib").mkdir()
    (board.flash_dir / "userlib" / "x.py").write_text("Z = 3\n")
    (board.flash_dir / "stale.py").write_text("# a root module the firmware does not have\n")
    report = run_deploy(board, firmware)
    assert report.removed == ["/stale.py"]          # root modules are the firmware's to manage
    for kept in ("certs/extra.py", "notes.txt", "userlib/x.py"):
        assert (board.flash_dir / kept).exists()


def test_config_is_uploaded_atomically_and_the_board_boots_with_it(board, firmware, tmp_path):
    cfg = json.loads((DATA_DIR / "configs" / "grid-sensor.json").read_text())
    cfg.update(thing="deploy-002", board="sim")
    path = tmp_path / "device.json"
    path.write_text(json.dumps(cfg))
    since = len(board.log())
    with BoardLink(board.port) as link:
        report = deploy(link, firmware, config=path)
    settled(board, since)
    assert report.thing == "deploy-002"
    assert "/config.json" in [p for p, _ in report.sent] and "/board.json" in report.skipped
    assert json.loads((board.flash_dir / "config.json").read_text()) == cfg
    assert not [p for p in board_tree(board) if ".tmp" in p or p.endswith(".new")]
    with BoardLink(board.port) as link:
        again = deploy(link, firmware, config=path)
    assert again.sent == [] and "/config.json" in again.skipped


def test_bad_config_is_refused_before_anything_is_written(board, firmware, tmp_path):
    before = {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"thing": "bad thing!", "metrics": {}, "interval_s": 0}))
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match=r"bad.json: .*thing: must be 1 to 128 characters.*"
                                                  r"interval_s: must be a number >= 1"):
            deploy(link, firmware, config=path)
    assert {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)} == before


def test_config_for_another_thing_than_the_certificate_is_refused(board, firmware, tmp_path):
    from host_tools.cloud import certs
    certs.init_ca(tmp_path / "ca")
    certs.issue_device("deploy-001", tmp_path / "deploy-001", tmp_path / "ca")
    (board.flash_dir / "certs" / "device.der").write_bytes(
        certs.to_der(tmp_path / "deploy-001" / certs.DEVICE_CRT))
    before = {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)}
    cfg = json.loads((DATA_DIR / "configs" / "grid-sensor.json").read_text())
    path = tmp_path / "device.json"
    path.write_text(json.dumps(dict(cfg, thing="deploy-002", board="sim")))
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match=r"device.json: thing 'deploy-002' does not match the "
                                                  r"board's certificate, which is for 'deploy-001'"):
            deploy(link, firmware, config=path)
    assert {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)} == before
    path.write_text(json.dumps(dict(cfg, thing="deploy-001", board="sim")))
    assert run_deploy(board, firmware, config=path).thing == "deploy-001"


def test_mpy_deploy_sends_compiled_modules_and_boots(board, firmware):
    run_deploy(board, firmware)                       # .py first: the .mpy deploy must replace them
    report = run_deploy(board, firmware, mpy=True, board="sim")
    sent = [p for p, _ in report.sent]
    assert "/edge/status.mpy" in sent and "/app.mpy" in sent
    assert not [p for p in sent if p.endswith(".py")]
    assert "/main.py" in report.skipped and "/boot.py" in report.skipped
    assert "/edge/status.py" in report.removed and "/app.py" in report.removed
    tree = board_tree(board)
    assert "edge/status.mpy" in tree and "edge/status.py" not in tree
    assert (board.flash_dir / "edge" / "status.mpy").read_bytes()[:1] == b"M"   # .mpy header
    again = run_deploy(board, firmware, mpy=True, board="sim")
    assert again.sent == [] and again.removed == []


def test_cli_progress_on_stderr_result_on_stdout_and_json(board, firmware, capsys):
    """Issue 12: progress on stderr (it was on stdout), the result on stdout, --json alone there."""
    since = len(board.log())
    code = main(["deploy", "--port", board.port, "--firmware-dir", str(firmware)])
    out, err = capsys.readouterr()
    assert code == 0, err
    settled(board, since)
    assert err.startswith(f"deploying {firmware} to {board.port}: waiting for the board to answer")
    assert "sending (" in err and "waiting for the application" in err
    assert "sending" not in out and "waiting" not in out
    version = firmware_version(firmware)
    assert re.search(rf"running: firmware v{re.escape(version)} thing=deploy-001 config=[0-9a-f]{{12}}", out)
    # mpremote's transport sends file data as bytes literals inside raw-paste commands
    payload, wire = map(int, re.search(r"sent \d+ file\(s\), (\d+) bytes \((\d+) on the serial line\)", out).groups())
    assert payload < wire < payload * 2
    since = len(board.log())
    code = main(["deploy", "--port", board.port, "--firmware-dir", str(firmware), "--json"])
    out, err = capsys.readouterr()
    settled(board, since)
    doc = json.loads(out)                       # stdout holds the JSON document and nothing else
    assert code == 0 and doc["ok"] and doc["sent"] == [] and "/main.py" in doc["skipped"]
    assert doc["version"] == version and doc["thing"] == "deploy-001" and len(doc["config"]) == 12


def test_firmware_that_does_not_boot_is_reported(board, firmware):
    (firmware / "main.py").write_text("print('no banner here')\n")
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match=r"the firmware did not boot after the deploy: .*"
                                                  r"no banner here"):
            deploy(link, firmware, boot_timeout=3)


def test_deploy_over_usb_replaces_an_ota_slot_with_the_deployed_firmware(board, firmware):
    """A board running an over-the-air update (slot a, another version): after a deploy the
    deployed firmware runs, and the slots' flash is given back."""
    run_deploy(board, firmware)
    slot = board.flash_dir / "update" / "a"
    shutil.copytree(firmware, slot, ignore=shutil.ignore_patterns("boot.py", "main.py", "otaboot.py"))
    init = slot / "edge" / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "', 'VERSION = "9.9.9"  # was "', 1))
    (slot / ".manifest").write_text("{}")
    (board.flash_dir / "update" / "state.json").write_text(json.dumps(
        {"active": "a", "previous": None, "pending": None, "result": None, "seq": 1}))
    with BoardLink(board.port) as link:
        link.soft_reset()
    board.wait_for_log("edgeshadow firmware v9.9.9")
    report = run_deploy(board, firmware)
    assert report.version == firmware_version(firmware) and "/update/" in report.removed
    assert not (board.flash_dir / "update").exists()


# -- issue 12: no wrong success, no traceback, no silent wait -------------------------------------

def test_a_config_the_board_refuses_at_boot_fails_the_deploy_with_the_boards_reason(board, firmware):
    """The board's /config.json (written by an older inject) has interval_s "ten": the firmware
    boots, prints its banner and refuses the config. deploy used to print "booted" and exit 0."""
    run_deploy(board, firmware)
    cfg = json.loads((board.flash_dir / "config.json").read_text())
    (board.flash_dir / "config.json").write_text(json.dumps(dict(cfg, interval_s="ten")))
    with BoardLink(board.port) as link:
        with pytest.raises(EdgeshadowError, match=r"did not start its application: its config is "
                                                  r"refused: /config.json: interval_s: must be a "
                                                  r"number >= 1"):
            deploy(link, firmware)


def test_a_config_for_another_board_is_refused_before_writing(board, firmware, tmp_path, capsys):
    before = {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)}
    cfg = json.loads((DATA_DIR / "configs" / "grid-sensor-sim.json").read_text())
    path = tmp_path / "devkitc.json"
    path.write_text(json.dumps(dict(cfg, thing="deploy-001", board="esp32-devkitc")))
    assert main(["deploy", "--port", board.port, "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"edgeshadow: error: {path}: the config is for board 'esp32-devkitc', but the board "
                   f"on {board.port} is a 'sim' (its /board.json); nothing was written (use a config "
                   f"made for sim, or pass --board esp32-devkitc if this board really is a esp32-devkitc)")
    assert {p: (board.flash_dir / p).read_bytes() for p in board_tree(board)} == before


@pytest.mark.parametrize("make, needle", [
    (lambda d: d, "is a folder; give a JSON file"),
    (lambda d: (d / "big.json").write_bytes(b"{" * (50 << 20)) and d / "big.json",
     "is 50.0 MB; a device config is at most 8192 bytes of JSON"),
])
def test_bad_config_files_are_one_line_and_no_board_is_opened(tmp_path, make, needle, capsys):
    """`deploy --config /tmp` was a traceback; a 50 MB config was read whole. Both fail on the host
    at once, before the port is opened (this port does not exist)."""
    path = make(tmp_path)
    assert main(["deploy", "--port", str(tmp_path / "no-such-port"), "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and "no-such-port" not in err


def test_a_port_where_nothing_answers_is_no_answer_with_what_it_waits_for_first(capsys):
    import os
    import pty
    master, slave = pty.openpty()  # a serial port with nothing behind it
    try:
        port = os.ttyname(slave)
        assert main(["deploy", "--port", port]) == 3   # cannot act: no board
    finally:
        os.close(master)
        os.close(slave)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == ""
    assert lines[0].endswith(f"to {port}: waiting for the board to answer (Ctrl-C, raw REPL) ...")
    assert lines[-1].startswith(f"edgeshadow: error: no answer from the board on {port} within 5 s")
