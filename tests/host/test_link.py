"""BoardLink against a virtual board: one mpremote SerialTransport for a whole session."""
import hashlib

import pytest

from host_tools.errors import EdgeshadowError
from host_tools.device.link import BoardLink
from tests.host.conftest import firmware_without_app


@pytest.fixture
def link(virtual_board):
    vb = virtual_board("link-001", firmware=False)
    with BoardLink(vb.port) as link:
        link.vb = vb
        yield link


def test_exec_eval_and_board_errors(link):
    assert link.exec("print('a', 6 * 7)").strip() == "a 42"
    assert link.eval("{'k': [1, 2.5, None, b'\\x00']}") == {"k": [1, 2.5, None, b"\x00"]}
    with pytest.raises(EdgeshadowError, match="ZeroDivisionError"):
        link.exec("1 / 0")
    assert link.eval("1 + 1") == 2  # the link still works after a board exception


def test_files_round_trip(link):
    data = bytes(range(256)) * 40 + b"tail"
    link.write_file_atomic("/deep/er/blob.bin", data)
    assert (link.vb.flash_dir / "deep" / "er" / "blob.bin").read_bytes() == data
    assert link.read_file("/deep/er/blob.bin") == data
    assert link.sha256("/deep/er/blob.bin") == hashlib.sha256(data).hexdigest()
    assert link.sha256("/deep/er/missing.bin") is None
    assert link.ls("/deep/er") == [("blob.bin", len(data), False)]
    assert ("deep", 0, True) in link.ls("/")
    link.mkdir("/deep/er/sub")
    link.mkdir("/deep/er/sub")  # already there: fine
    link.remove("/deep/er/blob.bin")
    link.remove("/deep/er/sub")
    assert link.ls("/deep/er") == []


def test_atomic_write_keeps_the_old_file_on_a_bad_copy(link, monkeypatch):
    link.write_file_atomic("/config.json", b'{"v": 1}')
    monkeypatch.setattr(link, "sha256", lambda path: "0" * 64)  # the board reports a bad copy
    with pytest.raises(EdgeshadowError, match="does not match"):
        link.write_file_atomic("/config.json", b'{"v": 2}')
    monkeypatch.undo()
    assert link.read_file("/config.json") == b'{"v": 1}'
    assert [n for n, _, _ in link.ls("/")].count("config.json.tmp") == 0


def test_missing_paths_are_named(link):
    with pytest.raises(EdgeshadowError, match="/nope.txt: no such file"):
        link.read_file("/nope.txt")
    with pytest.raises(EdgeshadowError, match="/nope: no such file"):
        link.ls("/nope")
    (link.vb.flash_dir / "afile").write_text("x")
    with pytest.raises(EdgeshadowError, match="/afile/sub: "):
        link.mkdir("/afile/sub")


def test_interrupt_stops_main_and_soft_reset_runs_it_again(virtual_board, tmp_path):
    firmware_without_app(tmp_path / "link-002")
    vb = virtual_board("link-002")  # our main.py: it prints the banner
    vb.wait_for_log("no /app.py on this board yet")
    with BoardLink(vb.port) as link:
        link.interrupt()
        assert link.eval("2 ** 10") == 1024
        out = link.soft_reset()
        assert out.rstrip().endswith("thing=link-002")
        assert link.banner["thing"] == "link-002"
        assert link.eval("'after'") == "after"  # exec after a reset interrupts main.py again


def test_unknown_port_is_one_sentence_with_a_hint():
    with pytest.raises(EdgeshadowError) as e:
        BoardLink("/dev/ttyUSB9")
    assert str(e.value).startswith("could not open /dev/ttyUSB9: no such device")
    assert "edgeshadow sim" in str(e.value)


def test_a_board_that_does_not_answer(tmp_path):
    import os
    import pty
    master, slave = pty.openpty()  # a serial port with nothing behind it
    try:
        with BoardLink(os.ttyname(slave), answer_timeout=1) as link:
            with pytest.raises(EdgeshadowError, match="no answer from the board on .* within 1 s") as e:
                link.exec("print(1)")
            assert e.value.exit_code == 3  # cannot test: no board
    finally:
        os.close(master)
        os.close(slave)
