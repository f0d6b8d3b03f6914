"""The virtual ROM bootloader against the real esptool (library API, no stub, no reset lines)."""
import hashlib
import os
import struct

import pytest
from esptool.cmds import attach_flash, detect_chip, reset_chip, write_flash
from esptool.util import FatalError

from host_tools.sim.rom import MiB, VirtualROM, build_image

CHIPS = {"esp32": ("ESP32", 0x1000), "esp32s3": ("ESP32-S3", 0x0), "esp32c3": ("ESP32-C3", 0x0)}


def payload(n, seed=1):
    """Deterministic bytes that compress about as well as machine code does."""
    out, x = bytearray(), seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out += bytes([x >> 16 & 0xFF]) * (1 + (x >> 8) % 3) + (x & 0xFFFF).to_bytes(2, "little")
    return bytes(out[:n])


def connect(rom):
    return detect_chip(rom.port, 115200, connect_mode="no-reset", connect_attempts=1)


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_esptool_detects_chip_and_reads_mac(chip):
    mac = (0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56)
    with VirtualROM(chip, mac=mac) as rom:
        with connect(rom) as esp:
            assert esp.CHIP_NAME == CHIPS[chip][0]
            assert esp.read_mac() == mac
        if chip == "esp32":   # the ESP32 ROM has no GET_SECURITY_INFO: detection by magic word
            assert rom.stats.commands["GET_SECURITY_INFO"] >= 1
            assert rom.stats.commands["READ_REG"] >= 1
        assert rom.stats.commands["SYNC"] == 1


@pytest.mark.parametrize("chip", sorted(CHIPS))
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "deflate"])
def test_esptool_writes_exact_bytes(chip, compress):
    image = build_image(chip, payload(50_000 + 777))
    offset = CHIPS[chip][1]
    with VirtualROM(chip) as rom:
        with connect(rom) as esp:
            esp.change_baud(460800)
            attach_flash(esp)
            write_flash(esp, [(offset, image)], compress=compress, no_compress=not compress)
            reset_chip(esp, "soft-reset")
        assert bytes(rom.flash[offset:offset + len(image)]) == image
        assert rom.flash[:offset] == b"\xff" * offset
        assert rom.flash[offset + len(image):] == b"\xff" * (len(rom.flash) - offset - len(image))
        used = rom.stats.commands
        assert used["FLASH_DEFL_DATA" if compress else "FLASH_DATA"] > 0
        assert used["FLASH_DATA" if compress else "FLASH_DEFL_DATA"] == 0
        assert used["SPI_FLASH_MD5"] == 1 and used["SPI_ATTACH"] == 1
        assert rom.baud == 460800 and rom.app_starts == 1


def test_flash_data_with_a_bad_checksum_is_refused():
    with VirtualROM("esp32") as rom:
        with connect(rom) as esp:
            attach_flash(esp)
            esp.flash_begin(1024, 0x10000)
            block = bytes(range(256)) * 4
            with pytest.raises(FatalError, match="0107"):   # status 1, error 7: bad checksum
                esp.check_command("write", 0x03, struct.pack("<IIII", 1024, 0, 0, 0) + block,
                                  chk=esp.checksum(block) ^ 0x55)
            esp.flash_block(block, 0)            # the same block with the right checksum is taken
        assert bytes(rom.flash[0x10000:0x10400]) == block


def test_write_without_erase_only_clears_bits_like_nor_flash():
    with VirtualROM("esp32", flash_size=2 * MiB) as rom:
        rom.flash[0:4] = b"\x0f\xf0\xff\x00"
        rom._program(0, b"\xff\x0f\x3c\xff")
        assert bytes(rom.flash[0:4]) == b"\x0f\x00\x3c\x00"
        assert len(rom.flash) == 2 * MiB


def test_md5_is_computed_over_flash():
    with VirtualROM("esp32s3") as rom:
        rom.flash[0x2000:0x3000] = os.urandom(0x1000)
        with connect(rom) as esp:
            attach_flash(esp)
            assert esp.flash_md5sum(0x2000, 0x1000) == hashlib.md5(rom.flash[0x2000:0x3000]).hexdigest()


def test_stop_closes_the_port():
    rom = VirtualROM("esp32c3").start()
    port = rom.port
    assert os.path.exists(port)
    rom.stop()
    with pytest.raises(FatalError):
        detect_chip(port, 115200, connect_mode="no-reset", connect_attempts=1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="chip must be one of"):
        VirtualROM("esp8266")
    with pytest.raises(ValueError, match="power of two"):
        VirtualROM("esp32", flash_size=3 * MiB)


def test_requests_are_read_and_answered_with_esptools_slip_code(monkeypatch):
    from host_tools.sim import rom as rom_module
    from esptool.loader import ESPLoader
    readers, frames = [], []
    real_reader, real_write = rom_module.slip_reader, ESPLoader.write
    monkeypatch.setattr(rom_module, "slip_reader", lambda port, trace: readers.append(port) or real_reader(port, trace))
    monkeypatch.setattr(ESPLoader, "write", lambda self, packet: frames.append(packet) or real_write(self, packet))
    with VirtualROM("esp32s3") as rom:
        answered_by_rom = len(frames)
        with connect(rom) as esp:
            assert esp.CHIP_NAME == "ESP32-S3"
        assert readers and readers[0] is rom._wire
        rom_frames = [f for f in frames[answered_by_rom:] if f[0] == 0x01]   # responses start with 01
        assert len(rom_frames) == rom.stats.requests + 7                     # SYNC answered 8 times


def test_noise_between_frames_is_skipped_as_the_rom_does():
    with VirtualROM("esp32") as rom:
        fd = os.open(rom.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"noise \xdb\x00 from a terminal\r\n")
        finally:
            os.close(fd)
        with connect(rom) as esp:
            assert esp.CHIP_NAME == "ESP32"
