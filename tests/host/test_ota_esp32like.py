"""Over-the-air updates on the ESP32-like runtime (32-bit, float32) at the board's own GC heap
(boards/_common.json gc_heap, 112,000 B), with the firmware in the board's ROMFS partition, as the
virtual board lays it on this runtime (and `deploy --romfs` on a board).

From files the firmware needs ~112-160 KB: an update that runs its new version from /update/<slot>
files fails there with MemoryError. So these boards take ROMFS updates (`ota build --romfs`): the
app as one ROMFS image, downloaded into the inactive slot (SHA-256 checked), switched to by the
slot pointer, and copied into the ROMFS partition at boot (firmware/otaboot.py: erase and write a
block at a time through the partition object vfs.rom_ioctl(2, 0), as the ESP32 port gives it;
verified by SHA-256, redone at the next boot if cut). The image deployed over USB is kept as the
other slot before the first update overwrites it; a rollback copies the previous image back.
"""
import json
import os
import random
import signal
import time

import pytest

from _broker_fixtures import local_broker  # noqa: F401
from _ota_fixtures import executions, firmware_variant, prepare_flash, wait_until
from host_tools import FIRMWARE_DIR
from host_tools.cloud import ota
from host_tools.cloud.shadow_api import LocalShadow
from host_tools.device.boards import load_board
from host_tools.sim import runtimes
from host_tools.sim.board import VirtualBoard

pytestmark = pytest.mark.skipif(not runtimes.available("esp32like"),
                                reason="the ESP32-like runtime is not built (`make esp32like`)")

NO_MEMORY = ("MemoryError", "memory allocation failed")
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "CANCELED")
BOARD = load_board("sim")
THING = "ota-romfs-001"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return ota.keygen(tmp_path_factory.mktemp("k"))


@pytest.fixture(scope="module")
def board(local_broker, keys, tmp_path_factory):
    root = tmp_path_factory.mktemp("b")
    prepare_flash(root, THING, local_broker, keys[1], mpy_arch=BOARD["mpy_arch"], firmware="romfs")
    assert not (root / "flash" / "app.mpy").exists() and (root / "sim" / "romfs.bin").exists()
    vb = VirtualBoard(root, thing=THING, scenario="nominal", runtime="esp32like")
    vb.deployed = (root / "sim" / "romfs.bin").read_bytes()   # as `deploy --romfs` left it
    with vb:
        assert vb.heap is None and vb.romfs == "firmware"       # the board definition's heap and layout
        assert "heapsize" in " ".join(open(f"/proc/{vb.proc.pid}/cmdline").read().split("\0"))
        vb.wait_for_log("net: connected", timeout=90)
        yield vb


def _bundle(keys, tmp_path, version, seq, replace=None):
    fw = firmware_variant(tmp_path / version, version, replace)
    return ota.build(fw, keys[0], mpy_arch=BOARD["mpy_arch"], version=version, seq=seq, romfs=True)


def _run_job(env, bundle, vb, timeout=180):
    admin_crt, admin_key = env.client_cert("edgeshadow-admin")
    with ota.LocalJobs(env.host, env.port, env.broker.ca_cert, admin_crt, admin_key) as admin:
        job = ota.push_local(admin, bundle, [vb.thing])
    wait_until(lambda: executions(env, job)[vb.thing] in TERMINAL, timeout, f"job {job} to end", every=0.25)
    return job, executions(env, job)[vb.thing]


def _partition(vb, n):
    return (vb.sim_dir / "romfs.bin").read_bytes()[:n]


def _state(vb):
    return json.loads((vb.flash_dir / "update" / "state.json").read_text())


def _shadow_fw(env, thing):
    crt, key = env.client_cert("edgeshadow-admin")
    with LocalShadow(env.host, env.port, env.broker.ca_cert, crt, key) as sh:
        return sh.get(thing)["state"]["reported"].get("fw")


def test_a_romfs_update_runs_the_new_version_in_place_at_the_board_heap(local_broker, board, keys, tmp_path):
    vb = board
    bundle = _bundle(keys, tmp_path, "0.2.0", 2)
    assert bundle.kind == "romfs" and [f["path"] for f in bundle.manifest["files"]] == ["romfs.img"]
    mark = len(vb.log())
    job, status = _run_job(local_broker, bundle, vb)
    log = vb.log()[mark:]
    assert status == "SUCCEEDED", log[-3000:]
    assert not any(s in log for s in NO_MEMORY), log[-3000:]
    assert "ota: copying slot a into the ROMFS partition" in log and "ROMFS partition holds slot a" in log
    after = log[log.index("ROMFS partition holds slot a"):]
    assert "edgeshadow firmware v0.2.0" in after
    assert _partition(vb, len(bundle.blob)) == bundle.blob           # the new image, in place
    st = _state(vb)
    assert st["active"] == "a" and st["previous"] == "b" and st["pending"] is None, st
    n = len(vb.deployed.rstrip(b"\xff"))
    kept = (vb.flash_dir / "update" / "b" / "romfs.img").read_bytes()
    assert kept == vb.deployed[:len(kept)] and len(kept) >= n - 1    # the USB-deployed image, kept
    assert json.loads((vb.flash_dir / "update" / "b" / ".manifest").read_text())["deployed"] is True
    assert sorted(p.name for p in vb.flash_dir.glob("*.mpy")) == ["otaboot.mpy", "otaboot_rom.mpy"]  # root-only
    wait_until(lambda: _shadow_fw(local_broker, vb.thing) == "0.2.0", 30, "the shadow's fw 0.2.0")
    details = local_broker.jobs.store.jobs[job]["executions"][vb.thing]["statusDetails"]
    assert details == {"version": "0.2.0"}


def test_a_romfs_update_that_raises_at_start_is_rolled_back_to_the_previous_image(local_broker, board, keys,
                                                                                  tmp_path):
    vb = board
    good = (vb.flash_dir / "update" / "a" / "romfs.img").read_bytes()
    app = (FIRMWARE_DIR / "app.py").read_text() + (
        "\n\ndef main():\n    raise RuntimeError('0.3.0 cannot start: missing calibration table')\n")
    bundle = _bundle(keys, tmp_path, "0.3.0", 3, {"app.py": app})
    mark = len(vb.log())
    job, status = _run_job(local_broker, bundle, vb)
    log = vb.log()[mark:]
    assert status == "FAILED", log[-3000:]
    reason = local_broker.jobs.store.jobs[job]["executions"][vb.thing]["statusDetails"]["reason"]
    assert "the app raised at start" in reason and "0.3.0 cannot start: missing calibration table" in reason
    assert "ota: copying slot b into the ROMFS partition" in log         # 0.3.0 ran from ROMFS...
    back = log.index("ota: rolled back")
    assert "ota: copying slot a into the ROMFS partition" in log[back:]  # ...and 0.2.0 was copied back
    vb.wait_for_log("edgeshadow firmware v0.2.0", start=mark + back)
    vb.wait_for_log("net: connected", start=mark + back, timeout=60)
    assert _partition(vb, len(good)) == good
    # the board clears its result once the service has accepted its report, a moment
    # after the job shows the final status
    st = wait_until(lambda: (lambda s: s if s["result"] is None else None)(_state(vb)), 30,
                    f"{vb.thing}'s reported result cleared")
    assert st["active"] == "a" and st["pending"] is None and st["result"] is None, st


def _kill_during_the_copy(vb, old, rng, deadline_s=120):
    """SIGKILL the firmware process at a random moment of its copy-on-boot (the partition stops
    holding the old image when it starts; the variant takes an ESP32 flash's erase and write
    times, about 1.2 s for this image); the partition's bytes at that moment."""
    path = vb.sim_dir / "romfs.bin"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            held = f.read(len(old))
        if held != old:
            time.sleep(rng.uniform(0.2, 0.9))
            os.kill(vb.state()["child_pid"], signal.SIGKILL)
            return path.read_bytes()
    raise AssertionError("the copy-on-boot did not start")


def test_a_power_cut_during_the_copy_on_boot_still_boots_a_working_version(local_broker, board, keys, tmp_path):
    vb = board
    old = (vb.flash_dir / "update" / "a" / "romfs.img").read_bytes()
    bundle = _bundle(keys, tmp_path, "0.4.0", 4)
    mark = len(vb.log())
    admin_crt, admin_key = local_broker.client_cert("edgeshadow-admin")
    with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert, admin_crt,
                       admin_key) as admin:
        job = ota.push_local(admin, bundle, [vb.thing])
    cut = _kill_during_the_copy(vb, old, random.Random(14))
    new = bundle.blob
    partial = cut[:len(new)]
    assert partial != new and cut[:len(old)] != old                        # cut mid-copy
    # the header is written last: the partition holds no image at the cut, never half of one
    assert cut[:3] != b"\xd2\xcd\x31", "a header over a half-written ROMFS image"
    copied = sum(partial[i:i + 4096] == new[i:i + 4096] for i in range(0, len(new), 4096))
    print(f"\npartition at the cut: {copied} of {-(-len(new) // 4096)} blocks copied")
    wait_until(lambda: executions(local_broker, job)[vb.thing] in TERMINAL, 180, "the job to end", every=0.25)
    log = vb.log()[mark:]
    assert executions(local_broker, job)[vb.thing] == "SUCCEEDED", log[-3000:]
    assert log.count("ota: copying slot b into the ROMFS partition") >= 2, log[-3000:]  # redone
    assert "edgeshadow firmware v0.4.0" in log
    assert _partition(vb, len(new)) == new


OTA_HEAP = 32 * 1024  # the job's need beside the firmware when both run from files (16 KB: ran once in two)


def test_an_app_update_from_files_needs_a_larger_heap(local_broker, keys, tmp_path):
    """The firmware and the update as files (a board without a ROMFS partition, as the stock
    ESP32_GENERIC image): the agent's code is loaded into the heap (~15 KB) and the new version runs
    from /update/<slot>; the whole update runs at runtimes.NEEDED_HEAP + OTA_HEAP (160 KB)."""
    prepare_flash(tmp_path / "b", "ota-esp32like-001", local_broker, keys[1], mpy_arch=BOARD["mpy_arch"],
                  firmware="files")
    bundle = ota.build(firmware_variant(tmp_path / "fw", "0.2.0"), keys[0], mpy_arch=BOARD["mpy_arch"],
                       version="0.2.0", seq=2)
    with VirtualBoard(tmp_path / "b", thing="ota-esp32like-001", scenario="nominal", runtime="esp32like",
                      heap=runtimes.NEEDED_HEAP + OTA_HEAP, romfs=0) as vb:
        vb.wait_for_log("net: connected", timeout=90)
        job, status = _run_job(local_broker, bundle, vb, timeout=120)
        log = vb.log()
        assert status == "SUCCEEDED", log[-2000:]
        assert not any(s in log for s in NO_MEMORY)
        assert "edgeshadow firmware v0.2.0" in log
