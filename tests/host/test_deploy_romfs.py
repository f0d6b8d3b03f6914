"""`edgeshadow deploy` puts the firmware in the board's ROMFS partition where it has one: the
modules run in place from flash, which is what makes the whole firmware fit an ESP32-WROOM's heap
(from the filesystem it needs about 120 KB; tests/host/test_memory_budget.py)."""
import json

import pytest

from host_tools.cli import main
from host_tools.device.link import BoardLink
from host_tools.sim import runtimes

needs_esp32like = pytest.mark.skipif(not runtimes.available("esp32like"),
                                     reason="the ESP32-like runtime is not built (`make esp32like`)")


def _deploy(capsys, port, *args):
    code = main(["deploy", "--port", port, "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@needs_esp32like
def test_deploy_puts_the_firmware_in_romfs_removes_the_filesystem_copies_and_skips_an_unchanged_image(
        virtual_board, capsys):
    # a board with an empty 256 KB partition and the firmware on its filesystem (as a files deploy leaves it)
    vb = virtual_board("romdep-001", runtime="esp32like", romfs=256 * 1024)
    assert (vb.flash_dir / "app.mpy").exists() and (vb.flash_dir / "net").is_dir()
    code, doc, err = _deploy(capsys, vb.port)
    assert code == 0, err
    assert doc["romfs"]["written"] is True and 0 < doc["romfs"]["bytes"] <= 256 * 1024
    assert "/app.mpy" in doc["removed"] and "/net/" in doc["removed"]
    left = sorted(p.name for p in vb.flash_dir.iterdir() if p.suffix in (".py", ".mpy") or p.is_dir())
    assert set(left) <= {"boot.py", "certs", "main.py", "otaboot.mpy", "otaboot_rom.mpy", "spool"}, left
    with BoardLink(vb.port) as link:
        assert link.exec("import app\nprint(app.__file__)").strip() == "/rom/app.mpy"
    code, doc, err = _deploy(capsys, vb.port)   # the same firmware again: nothing rewritten
    assert code == 0, err
    assert doc["romfs"]["written"] is False and doc["sent"] == [] and doc["removed"] == []


@needs_esp32like
def test_no_romfs_keeps_the_filesystem_layout_and_romfs_on_a_board_without_the_partition_is_refused(
        virtual_board, capsys):
    # the stock ESP32 image's layout; from files the firmware needs runtimes.NEEDED_HEAP
    vb = virtual_board("romdep-002", runtime="esp32like", romfs=0, heap=runtimes.NEEDED_HEAP)
    code, doc, err = _deploy(capsys, vb.port, "--romfs")
    assert code == 1 and doc is None
    assert "has no ROMFS partition" in err
    code, doc, err = _deploy(capsys, vb.port)     # default: the filesystem, as the board has no partition
    assert code == 0 and doc["romfs"] is None, err
    vb2 = virtual_board("romdep-003", runtime="esp32like", romfs=256 * 1024, heap=runtimes.NEEDED_HEAP)
    code, doc, err = _deploy(capsys, vb2.port, "--no-romfs")
    assert code == 0 and doc["romfs"] is None, err
    assert (vb2.flash_dir / "app.py").exists() and (vb2.flash_dir / "net" / "mqtt.py").exists()


class _CablePulled(Exception):
    pass


@needs_esp32like
def test_a_write_cut_halfway_leaves_no_image_and_the_next_deploy_restores_it(virtual_board, capsys):
    """The image's header (its first erase block) is written last: a write cut halfway leaves a
    partition that holds no image, so the board boots without mounting it (a header over half an
    image would send every import from /rom into garbage), and the next deploy writes it whole."""
    import os
    from host_tools.device import romfs
    vb = virtual_board("romdep-004", runtime="esp32like", romfs=256 * 1024)
    assert _deploy(capsys, vb.port)[0] == 0
    image = romfs.build_image({f"/pad{i}.py": os.urandom(3000) for i in range(20)})  # another image

    def pull_the_cable(done, total):
        if done >= total // 2:
            raise _CablePulled()

    with BoardLink(vb.port) as link:
        with pytest.raises(_CablePulled):
            romfs.write_image(link, image, on_progress=pull_the_cable)
    held = (vb.sim_dir / "romfs.bin").read_bytes()
    assert held[:3] != b"\xd2\xcd\x31" and held[4096:len(image) // 2] == image[4096:len(image) // 2]
    mark = len(vb.log())
    vb.stop()   # power off and on: the partition keeps what was written
    vb.start()
    vb.wait_for_log("no module named 'edge'", start=mark)   # booted to the REPL, nothing to run
    with BoardLink(vb.port) as link:
        assert link.exec("import os\ntry:\n os.listdir('/rom')\nexcept OSError:\n print('none')").strip() == "none"
    code, doc, err = _deploy(capsys, vb.port)
    assert code == 0 and doc["romfs"]["written"] is True, err
    with BoardLink(vb.port) as link:
        assert link.exec("import app\nprint(app.__file__)").strip() == "/rom/app.mpy"
