"""The firmware in a ROMFS partition (host_tools/device/romfs.py) on the ESP32-like runtime, whose
ROMFS partition is a memory-mapped file behaving as NOR flash (host_tools/sim/esp32like/variant/).

The memory it saves is measured in tests/host/test_memory_budget.py (the whole firmware in 80 KB)."""
import hashlib

import pytest

from host_tools.device import romfs
from host_tools.device.deploy import local_files
from host_tools import FIRMWARE_DIR
from host_tools.device.link import BoardLink
from host_tools.errors import EdgeshadowError
from host_tools.sim import runtimes

pytestmark = pytest.mark.skipif(not runtimes.available("esp32like"),
                                reason="the ESP32-like runtime is not built (`make esp32like`)")


@pytest.fixture(scope="module")
def image():
    files, _ = local_files(FIRMWARE_DIR, "x64")
    rom, on_fs = romfs.split(files)
    assert sorted(on_fs) == ["/boot.py", "/main.py", "/otaboot.mpy", "/otaboot_rom.mpy"]
    assert "/app.mpy" in rom and "/net/mqtt.mpy" in rom
    return romfs.build_image(rom)


def test_the_image_is_written_over_the_serial_link_verified_and_imported_in_place(virtual_board, image):
    vb = virtual_board("rom-001", firmware=False, runtime="esp32like", romfs=128 * 1024)
    with BoardLink(vb.port) as link:
        assert romfs.partition_size(link) == 128 * 1024
        progress = []
        assert romfs.write_image(link, image, on_progress=lambda done, total: progress.append(done)) == len(image)
        assert progress[-1] == len(image)
        out = link.exec("import edge.text, gc\nprint(edge.text.__file__)")
        assert out.strip() == "/rom/edge/text.mpy"
    part = (vb.sim_dir / "romfs.bin").read_bytes()
    assert hashlib.sha256(part[:len(image)]).digest() == hashlib.sha256(image).digest()


def test_a_board_without_a_romfs_partition_is_told_so(virtual_board):
    vb = virtual_board("rom-002", firmware=False, runtime="esp32like", romfs=0)  # as the stock ESP32 image
    with BoardLink(vb.port) as link, pytest.raises(EdgeshadowError, match="has no ROMFS partition"):
        romfs.partition_size(link)


def test_an_image_larger_than_the_partition_is_refused_before_anything_is_erased(virtual_board, image):
    vb = virtual_board("rom-003", firmware=False, runtime="esp32like", romfs=16 * 1024)
    before = (vb.sim_dir / "romfs.bin").read_bytes() if (vb.sim_dir / "romfs.bin").exists() else None
    with BoardLink(vb.port) as link, pytest.raises(EdgeshadowError, match=r"partition holds 16384"):
        romfs.write_image(link, image)
    assert before is None or (vb.sim_dir / "romfs.bin").read_bytes() == before


def test_the_partition_behaves_as_flash_and_a_bad_write_is_caught(virtual_board, image):
    """Bits only clear: writing over a block that was not erased leaves other bytes than written,
    and the read-back check says so instead of reporting success."""
    vb = virtual_board("rom-004", firmware=False, runtime="esp32like", romfs=128 * 1024)
    with BoardLink(vb.port) as link:
        romfs.write_image(link, image)
        other = bytes(b ^ 0x5A for b in image[:4096])
        link.exec("import vfs, binascii\n"
                  f"vfs.rom_ioctl(2, 0).writeblocks(0, binascii.a2b_base64({__import__('base64').b64encode(other)!r}), 0)")
        held = bytes(link.eval("bytes(memoryview(__import__('vfs').rom_ioctl(2, 0))[:16])"))
        assert held == bytes(a & b for a, b in zip(image[:16], other[:16])) != other[:16]
        romfs.write_image(link, image)  # erased first: written as it should be
        assert link.exec("import edge\nprint(edge.__file__)").strip() == "/rom/edge/__init__.mpy"


def test_the_partition_is_reached_as_on_the_esp32_port(virtual_board):
    """As ports/esp32/esp32_partition.c: rom_ioctl(2, 0) is a Partition (4 KB erase blocks, a
    read-only buffer), and the write prepare/write/complete ioctls are refused (-EINVAL), so the
    firmware and the host tools write the partition only as a real ESP32 lets them."""
    vb = virtual_board("rom-005", firmware=False, runtime="esp32like", romfs=64 * 1024)
    with BoardLink(vb.port) as link:
        link.exec("import vfs\ndev = vfs.rom_ioctl(2, 0)")
        assert link.eval("[vfs.rom_ioctl(c, 0, 0, b'x') for c in (3, 4, 5)]") == [-22, -22, -22]
        assert link.eval("(dev.ioctl(4, 0), dev.ioctl(5, 0), len(memoryview(dev)))") == (16, 4096, 65536)
        assert link.eval("dev.ioctl(6, 1) or bytes(memoryview(dev)[4096:4100])") == b"\xff" * 4
        assert "EINVAL" in link.exec("try:\n dev.writeblocks(0, b'ab')\nexcept OSError as e:\n print(e)")
        link.exec("dev.writeblocks(1, b'\\x0f\\xf0', 0)\ndev.writeblocks(1, b'\\xf0\\xff', 0)")
        assert link.eval("bytes(memoryview(dev)[4096:4099])") == b"\x00\xf0\xff"  # bits only clear
