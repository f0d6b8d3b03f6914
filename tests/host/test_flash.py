"""`edgeshadow flash` against virtual ROM bootloaders: board checks, offsets, parallel boards."""
import json
import os
import subprocess
import sys

import pytest

from host_tools.device.boards import load_board
from host_tools.cli import main
from host_tools.errors import EdgeshadowError
from host_tools.device.flash import connection_options, flash_boards, is_pseudo_terminal
from host_tools.sim.rom import MiB, VirtualROM, build_image

ESP32 = "esp32-devkitc"
ESP32S3 = "esp32-s3-devkitc-1"


def write_image(tmp_path, chip, size=40_000, name=None, flash_size="4MB"):
    data = build_image(chip, bytes((i * 7 + i // 251) & 0xFF for i in range(size)), flash_size)
    path = tmp_path / (name or f"{chip}.bin")
    path.write_bytes(data)
    return path, data


def untouched(rom):
    return rom.flash == b"\xff" * len(rom.flash) and not (
        rom.stats.commands["FLASH_BEGIN"] or rom.stats.commands["FLASH_DEFL_BEGIN"])


def test_esp32_image_lands_at_0x1000_byte_for_byte(tmp_path):
    path, image = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as rom:
        [result] = flash_boards(load_board(ESP32), [rom.port], path)
        assert result.ok, result.detail
        assert bytes(rom.flash[0x1000:0x1000 + len(image)]) == image
        assert rom.flash[:0x1000] == b"\xff" * 0x1000
        assert set(rom.flash[0x1000 + len(image):]) == {0xFF}
        assert result.chip == "esp32" and result.mac == "24:0a:c4:00:00:01"
        assert rom.baud == load_board(ESP32)["baud"]   # switched to the board's baud rate
        assert rom.app_starts == 1                     # soft reset: the ROM was told to run the app


def test_esp32s3_image_lands_at_0x0_byte_for_byte(tmp_path):
    path, image = write_image(tmp_path, "esp32s3", flash_size="8MB")
    with VirtualROM("esp32s3", flash_size=8 * MiB) as rom:
        [result] = flash_boards(load_board(ESP32S3), [rom.port], path)
        assert result.ok, result.detail
        assert bytes(rom.flash[:len(image)]) == image
        assert set(rom.flash[len(image):]) == {0xFF}


def test_esp32s3_image_is_refused_for_an_esp32_board_before_any_write(tmp_path):
    path, _ = write_image(tmp_path, "esp32s3")
    with VirtualROM("esp32") as rom:
        with pytest.raises(EdgeshadowError) as e:
            flash_boards(load_board(ESP32), [rom.port], path)
        assert str(e.value) == ("esp32s3.bin is built for ESP32-S3 (chip id 9) but board "
                                "esp32-devkitc has an ESP32 (chip id 0)")
        assert rom.stats.requests == 0 and untouched(rom)   # the port was never even opened


def test_detected_chip_that_differs_from_the_board_is_refused(tmp_path):
    path, _ = write_image(tmp_path, "esp32")
    with VirtualROM("esp32s3") as rom:
        [result] = flash_boards(load_board(ESP32), [rom.port], path)
        assert not result.ok
        assert result.detail == (f"the chip on {rom.port} is an ESP32-S3 but board esp32-devkitc "
                                 "expects an ESP32; nothing was written")
        assert untouched(rom)


def test_truncated_image_is_refused(tmp_path):
    path, image = write_image(tmp_path, "esp32")
    path.write_bytes(image[:len(image) // 2])
    with VirtualROM("esp32") as rom:
        with pytest.raises(EdgeshadowError, match=r"esp32.bin is truncated: end of file reading segment 0x3f400020, length 40000 \(actual length 20008\)"):
            flash_boards(load_board(ESP32), [rom.port], path)
        assert rom.stats.requests == 0 and untouched(rom)


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"\x00" + b[1:], "starts with byte 0x00, expected the ESP image magic 0xE9"),
    (lambda b: b[:10], "is 10 bytes: too short to be an ESP firmware image"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "is corrupt: its checksum byte"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "is corrupt: the SHA-256"),
])
def test_malformed_images_are_refused_with_what_is_wrong(tmp_path, mangle, message):
    path, image = write_image(tmp_path, "esp32")
    path.write_bytes(mangle(image))
    with pytest.raises(EdgeshadowError, match=message):
        flash_boards(load_board(ESP32), ["/dev/null"], path)


def test_image_that_does_not_fit_the_board_is_refused(tmp_path):
    board = load_board(ESP32)
    path, _ = write_image(tmp_path, "esp32", size=4 * MiB - 0x1000)   # + headers: past 4 MB
    with pytest.raises(EdgeshadowError, match=r"past the 4 MB flash of board esp32-devkitc"):
        flash_boards(board, ["/dev/null"], path)
    path, _ = write_image(tmp_path, "esp32", flash_size="16MB")
    with pytest.raises(EdgeshadowError, match=r"built for 16 MB of flash \(image header\) but board "
                                              r"esp32-devkitc has 4 MB"):
        flash_boards(board, ["/dev/null"], path)


def test_chip_with_less_flash_than_the_board_is_refused(tmp_path):
    path, _ = write_image(tmp_path, "esp32s3")
    with VirtualROM("esp32s3", flash_size=4 * MiB) as rom:
        [result] = flash_boards(load_board(ESP32S3), [rom.port], path)
        assert not result.ok
        assert "has 4MB of flash but board esp32-s3-devkitc-1 expects 8 MB" in result.detail
        assert untouched(rom)


def test_erase_clears_the_whole_flash_first(tmp_path):
    path, image = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as rom:
        rom.flash[0x200000:0x200010] = b"old data here..."
        [result] = flash_boards(load_board(ESP32), [rom.port], path, erase=True)
        assert result.ok, result.detail
        assert bytes(rom.flash[0x1000:0x1000 + len(image)]) == image
        assert set(rom.flash[0x1000 + len(image):]) == {0xFF}


def test_nothing_answering_on_the_port_is_a_clear_failure(tmp_path):
    path, _ = write_image(tmp_path, "esp32")
    master, slave = os.openpty()
    port = os.ttyname(slave)
    try:
        [result] = flash_boards(load_board(ESP32), [port], path, esptool_options={"connect_attempts": 1})
    finally:
        os.close(master)
        os.close(slave)
    assert not result.ok
    assert result.detail.startswith(f"could not connect to a chip in download mode on {port}: ")


def test_two_boards_flashed_in_parallel_with_a_summary_per_board(tmp_path, capsys):
    path, image = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as a, VirtualROM("esp32", mac=(0x24, 0x0A, 0xC4, 0, 0, 2)) as b:
        code = main(["flash", "--board", ESP32, "--port", a.port, "--port", b.port,
                     "--firmware", str(path)])
        out, err = capsys.readouterr()
        assert code == 0, err
        for rom in (a, b):
            assert bytes(rom.flash[0x1000:0x1000 + len(image)]) == image
            assert f"esp32-devkitc on {rom.port}: ok: {len(image)} bytes at 0x1000" in out
            assert f"[{rom.port}] done" in err          # progress on stderr, results on stdout
        assert len(out.splitlines()) == 2
        assert f"writing: {2 * len(image)}/{2 * len(image)}" in err
        assert "MAC 24:0a:c4:00:00:02" in err


def test_parallel_flash_with_one_wrong_chip_reports_each_board_and_fails(tmp_path, capsys):
    path, image = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as good, VirtualROM("esp32c3") as wrong:
        code = main(["flash", "--board", ESP32, "--port", good.port, "--port", wrong.port,
                     "--firmware", str(path)])
        out, err = capsys.readouterr()
        assert code == 1
        assert f"esp32-devkitc on {good.port}: ok" in out
        assert (f"esp32-devkitc on {wrong.port}: FAILED: the chip on {wrong.port} is an ESP32-C3 "
                "but board esp32-devkitc expects an ESP32") in out
        assert "1 of 2 board(s) failed" in err
        assert bytes(good.flash[0x1000:0x1000 + len(image)]) == image
        assert untouched(wrong)


def test_cli_refuses_a_bad_image_with_one_line_and_exit_1(tmp_path, capsys):
    path, _ = write_image(tmp_path, "esp32c3")
    code = main(["flash", "--board", ESP32, "--port", "/dev/null", "--firmware", str(path)])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        "edgeshadow: error: esp32c3.bin is built for ESP32-C3 (chip id 5) but board "
        "esp32-devkitc has an ESP32 (chip id 0)")
    code = main(["flash", "--board", ESP32, "--port", "/dev/null", "--firmware", str(tmp_path / "nope.bin")])
    assert code == 1 and "nope.bin does not exist" in capsys.readouterr().err


def test_connection_options_only_change_for_pseudo_terminals():
    with VirtualROM("esp32") as rom:
        assert is_pseudo_terminal(rom.port)
        assert connection_options(rom.port) == {"before": "no-reset", "after": "soft-reset", "stub": False}
    assert not is_pseudo_terminal("/dev/null")
    assert connection_options("/dev/ttyUSB0") == {"before": "default-reset", "after": "hard-reset",
                                                  "stub": True}


# -- issue 11: esptool's image loader; issue 12: output convention, no answer, busy port -------------
def test_image_checks_are_esptools_loader(tmp_path, monkeypatch):
    from host_tools.device import images
    loaded = []
    real = images.LoadFirmwareImage
    monkeypatch.setattr(images, "LoadFirmwareImage", lambda chip, data: loaded.append(chip) or real(chip, data))
    _, image = write_image(tmp_path, "esp32s3", flash_size="8MB")
    info = images.inspect_image(image, "s3.bin")
    assert loaded == ["esp32", "esp32s3"]      # the family layout, then the chip's flash size codes
    assert (info.chip, info.segments, info.header_flash_size) == ("esp32s3", 1, 8 * MiB)
    assert info.first_image_len == len(image)  # header to SHA-256: the whole single image


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:24] + b"\x00\x00", "is truncated: it ends at byte 26, before the end of its segments"),
    (lambda b: b[:-33], "is truncated: it ends at byte"),
    (lambda b: b[:-10], "is truncated: its SHA-256 needs bytes"),
    (lambda b: b[:1] + bytes([17]) + b[2:], "header says 17 segments, expected 1 to 16"),
    (lambda b: b[:1] + bytes([0]) + b[2:], "header says 0 segments, expected 1 to 16"),
    (lambda b: b[:23] + b"\x02" + b[24:], "header byte 23 (hash appended) is 2, expected 0 or 1"),
])
def test_every_malformed_header_is_one_sentence(tmp_path, mangle, message):
    _, image = write_image(tmp_path, "esp32")
    from host_tools.device.images import inspect_image
    with pytest.raises(EdgeshadowError) as e:
        inspect_image(mangle(image), "app.bin")
    assert str(e.value).startswith("app.bin") and message in str(e.value)


def test_flash_json_is_one_document_with_a_result_per_board(tmp_path, capsys):
    path, image = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as a, VirtualROM("esp32c3") as wrong:
        code = main(["flash", "--board", ESP32, "--port", a.port, "--port", wrong.port,
                     "--firmware", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    assert (doc["board"], doc["image_bytes"], doc["ok"]) == (ESP32, len(image), False)
    assert [(r["port"], r["ok"], r["chip"], r["exit_code"]) for r in doc["results"]] == [
        (a.port, True, "esp32", 0), (wrong.port, False, None, 1)]
    assert doc["results"][0]["bytes_written"] == len(image) and "1 of 2 board(s) failed" in err


def test_no_answer_on_the_port_is_one_line_and_exit_3(tmp_path, capsys):
    path, _ = write_image(tmp_path, "esp32")
    master, slave = os.openpty()
    port = os.ttyname(slave)
    try:
        code = main(["flash", "--board", ESP32, "--port", port, "--firmware", str(path)])
    finally:
        os.close(master)
        os.close(slave)
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert f"[{port}] connecting at 115200 baud (the board must be in download mode)" in err
    assert err.splitlines()[-1] == (f"edgeshadow: error: could not connect to a chip in download "
                                    f"mode on {port}: Failed to connect to Espressif device: No serial data received.")


def test_a_port_in_use_by_another_command_is_not_touched(tmp_path, capsys):
    path, _ = write_image(tmp_path, "esp32")
    with VirtualROM("esp32") as rom:
        holder = subprocess.Popen(
            [sys.executable, "-c", f"from host_tools.locks import port_lock; l = port_lock({rom.port!r}).acquire(); "
                                   "print('held', flush=True); import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "held\n"
            code = main(["flash", "--board", ESP32, "--port", rom.port, "--firmware", str(path)])
        finally:
            holder.kill()
            holder.wait()
        assert code == 3
        assert capsys.readouterr().err.splitlines()[-1].startswith(
            f"edgeshadow: error: port {rom.port} is in use by PID {holder.pid}")
        assert rom.stats.requests == 0 and untouched(rom)


@pytest.mark.parametrize("args, message, code", [
    (["--port", "/dev/ttyUSB9"], "could not open /dev/ttyUSB9: no such device (check the cable and `edgeshadow ports`)", 3),
    (["--port", "/dev/null"], "/dev/null is not a serial port (see `edgeshadow ports`)", 3),
    (["--port", "/dev/null", "--baud", "0"], "--baud 0: a baud rate is a positive number, e.g. 460800", 2),
])
def test_bad_ports_and_baud_rates_are_one_line_before_esptool_runs(tmp_path, capsys, args, message, code):
    path, _ = write_image(tmp_path, "esp32")
    assert main(["flash", "--board", ESP32, "--firmware", str(path)] + args) == code
    assert capsys.readouterr().err.splitlines()[-1] == f"edgeshadow: error: {message}"
