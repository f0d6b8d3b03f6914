"""MicroPython image updates over the air on a virtual board whose `esp32` stand-in models the OTA
partitions (file-backed), otadata and the bootloader's pending-verify/rollback rule: an image is
written to the next partition, checked (magic, chip id, size, SHA-256), booted on trial, confirmed
after the app connected and reported, and rolled back by the bootloader when it was not."""
import json
import os
import signal

import pytest

from _broker_fixtures import local_broker  # noqa: F401
from _ota_fixtures import executions, prepare_flash, wait_until
from host_tools.cloud import ota
from host_tools.sim.board import VirtualBoard
from host_tools.sim.rom import build_image

PART = 256 * 1024
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "CANCELED")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return ota.keygen(tmp_path_factory.mktemp("k"))


@pytest.fixture(scope="module")
def admin(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as j:
        yield j


@pytest.fixture(scope="module")
def board(local_broker, keys, tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    prepare_flash(root / "b", "ota-img-001", local_broker, keys[1])
    vb = VirtualBoard(root / "b", thing="ota-img-001", scenario="nominal", ota_partitions=PART)
    vb.start()
    try:
        vb.wait_for_log("net: connected", timeout=60)
        yield vb
    finally:
        vb.stop()


def otadata(vb):
    """The newest valid otadata record, decoded on the host."""
    import binascii
    raw = (vb.sim_dir / "otadata.bin").read_bytes()
    best = None
    for i in (0, 1):
        rec = raw[i * 256:(i + 1) * 256]
        body = rec[8:].rstrip(b" \x00\xff")
        try:
            if int(rec[:8], 16) == binascii.crc32(body):
                r = json.loads(body)
                best = r if best is None or r["seq"] > best["seq"] else best
        except ValueError:
            continue
    return best


def image(chip="esp32", n=60_000, seed=1):
    return build_image(chip, bytes((i * seed + 7) % 251 for i in range(n)))


def image_bundle(key, data, version, seq, **manifest):
    import hashlib
    m = {"kind": "image", "version": version, "seq": seq, "chip": "esp32", "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}
    m.update(manifest)
    text = json.dumps(m, sort_keys=True, separators=(",", ":"))
    return ota.Bundle(text, ota.sign(ota._load(key, True), text), data)


def run_job(env, admin, bundle, thing, timeout=90):
    job = ota.push_local(admin, bundle, [thing])
    wait_until(lambda: executions(env, job)[thing] in TERMINAL, timeout, "the image job to end")
    e = env.jobs.store.jobs[job]["executions"][thing]
    return e["status"], e["statusDetails"]


def test_image_update_is_written_checked_booted_on_trial_and_confirmed(local_broker, admin, keys, board, tmp_path):
    data = image()
    f = tmp_path / "micropython-1.24.ota.bin"
    f.write_bytes(data)
    bundle = ota.build_image(f, keys[0], board="sim", version="mpy-1.24.1", seq=100)
    status, details = run_job(local_broker, admin, bundle, board.thing)
    assert status == "SUCCEEDED", details
    assert (board.sim_dir / "ota_1.bin").read_bytes()[:len(data)] == data
    od = otadata(board)
    assert od["running"] == "ota_1" and od["boot"] == "ota_1" and od["states"]["ota_1"] == "valid"


def test_image_for_another_chip_or_damaged_is_refused_before_writing(local_broker, admin, keys, board):
    target = "ota_0" if otadata(board)["running"] == "ota_1" else "ota_1"
    before = (board.sim_dir / f"{target}.bin").read_bytes()
    s3 = image("esp32s3")
    cases = [
        # signed for an ESP32 but the bytes are an ESP32-S3 image: refused at the header
        (image_bundle(keys[0], s3, "s3", 101), "FAILED", "chip id 9"),
        (image_bundle(keys[0], s3, "s3", 102, chip="esp32s3"), "REJECTED", "this board is esp32"),
        (image_bundle(keys[0], b"\x00" * 5000, "junk", 103), "FAILED", "not an ESP firmware image"),
        (image_bundle(keys[0], image(n=PART + 10), "big", 104), "REJECTED", "does not fit partition"),
    ]
    trunc = image_bundle(keys[0], image(seed=3), "cut", 105)
    cases.append((ota.Bundle(trunc.manifest_text, trunc.signature, trunc.blob[:-4096]), "REJECTED",
                  "the manifest says"))
    for bundle, want, words in cases:
        status, details = run_job(local_broker, admin, bundle, board.thing)
        assert (status, words in details.get("reason", "")) == (want, True), (bundle.version, details)
        assert (board.sim_dir / f"{target}.bin").read_bytes() == before, bundle.version
    assert otadata(board)["boot"] == otadata(board)["running"]


def test_an_image_not_confirmed_before_a_power_cut_is_rolled_back_by_the_bootloader(local_broker, admin, keys,
                                                                                     board):
    old = otadata(board)["running"]
    mark = len(board.log())
    board.set_flags("wifi_down")              # the new image cannot connect, so it cannot confirm
    job = ota.push_local(admin, image_bundle(keys[0], image(seed=5), "no-net", 110), [board.thing])
    board.wait_for_log("restarting into it", start=mark, timeout=60)
    wait_until(lambda: otadata(board)["states"].get(otadata(board)["boot"]) == "pending_verify", 30,
               "the image to boot on trial")
    assert otadata(board)["running"] != old
    board.set_flags()
    os.kill(board.state()["child_pid"], signal.SIGKILL)     # power cut before it confirmed
    wait_until(lambda: executions(local_broker, job)[board.thing] in TERMINAL, 60, "the job to end")
    e = local_broker.jobs.store.jobs[job]["executions"][board.thing]
    assert e["status"] == "FAILED" and "bootloader went back" in e["statusDetails"]["reason"]
    od = otadata(board)
    assert od["running"] == old and od["boot"] == old and od["states"][old] == "valid"
    assert "aborted" in od["states"].values()


def test_a_board_without_ota_partitions_refuses_image_jobs(local_broker, admin, keys, tmp_path):
    prepare_flash(tmp_path / "p", "ota-img-002", local_broker, keys[1])
    with VirtualBoard(tmp_path / "p", thing="ota-img-002", scenario="nominal") as vb:
        vb.wait_for_log("net: connected", timeout=60)
        status, details = run_job(local_broker, admin, image_bundle(keys[0], image(), "x", 200), vb.thing)
    assert status == "REJECTED" and "no OTA partitions" in details["reason"]
