"""`edgeshadow ota keygen|build|push|status` and `inject --ota-key`, against the real local broker
and its jobs/streams service, one virtual board updated end to end through the CLI; and the
firmware's P-256 check against signatures made by the host (cryptography) on both runtimes."""
import json
import subprocess
import sys

import pytest

from _broker_fixtures import local_broker  # noqa: F401
from _ota_fixtures import ROMFS, firmware_variant, prepare_flash, state
from host_tools import ROOT
from host_tools.cloud import ota
from host_tools.device.link import BoardLink
from host_tools.sim.board import VirtualBoard

MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "host_tools", "ota", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    r = cli("keygen", "--out", d)
    assert r.returncode == 0, r.stderr
    return d / ota.KEY_NAME, d / ota.PUB_NAME


def test_keygen_refuses_to_replace_a_key(keys):
    r = cli("keygen", "--out", keys[0].parent)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert oct(keys[0].stat().st_mode & 0o777) == "0o600"


def test_build_push_wait_status_update_a_board(local_broker, keys, tmp_path):
    """inject --ota-key puts the public key on the board; push --wait exits 0 once it confirmed."""
    from host_tools.device.inject import inject_boards
    thing = "ota-cli-001"
    prepare_flash(tmp_path / "b", thing, local_broker, pub=None)
    certs_dir = local_broker.root / "devices"
    (certs_dir / thing / "root-ca.crt").write_bytes(local_broker.broker.ca_cert.read_bytes())
    fw = firmware_variant(tmp_path / "fw", "0.7.0")
    out = tmp_path / "fw.ota"
    # a board with a ROMFS partition (the ESP32-like runtime's) takes the app as a ROMFS image
    r = cli("build", "--firmware-dir", fw, "--key", keys[0], "-o", out, "--json", *(["--board", "sim"] if ROMFS else []))
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)
    assert built["version"] == "0.7.0" and built["bytes"] > 10000
    assert built["kind"] == ("romfs" if ROMFS else "app")
    with VirtualBoard(tmp_path / "b", thing=thing, scenario="nominal") as vb:
        [res] = inject_boards([(vb.port, thing)], certs_dir, ota_key=keys[1])
        assert res.ok, res.detail
        assert (vb.flash_dir / "certs" / "ota.pub").read_bytes() == ota.board_pubkey(keys[1])
        mark = len(vb.log())
        with BoardLink(vb.port) as link:  # inject leaves the board at its REPL: start the firmware
            link.soft_reset()
        vb.wait_for_log("net: connected", timeout=60, start=mark)
        state_file = local_broker.state_file()
        r = cli("push", out, thing, "--pub", keys[1], "--wait", "--wait-timeout", 120, "--json",
                "--broker-state", state_file)
        assert r.returncode == 0, r.stdout + r.stderr
        res = json.loads(r.stdout)
        assert res["executions"] == {thing: "SUCCEEDED"}
        assert f"{thing}: SUCCEEDED" in r.stderr
        assert state(vb)["active"] == "a"
        r = cli("status", res["job"], "--json", "--broker-state", state_file)
        assert r.returncode == 0
        [job] = json.loads(r.stdout)
        assert job["status"] == "COMPLETED" and job["executions"][thing]["statusDetails"]["version"] == "0.7.0"
        r = cli("status", "--broker-state", state_file)
        assert res["job"] in r.stdout and "SUCCEEDED" in r.stdout


def test_push_refuses_damaged_bundles_and_foreign_keys(local_broker, keys, tmp_path):
    state_file = local_broker.state_file()
    out = tmp_path / "fw.ota"
    assert cli("build", "--key", keys[0], "-o", out).returncode == 0
    raw = out.read_bytes()
    cut = tmp_path / "cut.ota"
    cut.write_bytes(raw[:-100])
    r = cli("push", cut, "nobody", "--broker-state", state_file)
    assert r.returncode == 1 and "truncated" in r.stderr
    other = tmp_path / "other"
    ota.keygen(other)
    r = cli("push", out, "nobody", "--pub", other / ota.PUB_NAME, "--broker-state", state_file)
    assert r.returncode == 1 and "signature does not verify" in r.stderr
    r = cli("push", out, "--broker-state", state_file)
    assert r.returncode == 1 and "--all" in r.stderr
    r = cli("push", out, "nobody", "--rollout", "0%", "--pub", keys[1], "--broker-state", state_file)
    assert r.returncode == 1 and "--rollout" in r.stderr
    # a thing with no board: the job is created and its execution waits, QUEUED
    r = cli("push", out, "nobody", "--pub", keys[1], "--job-id", "cli-queued", "--broker-state", state_file)
    assert r.returncode == 0 and r.stdout.strip() == "cli-queued"
    r = cli("status", "cli-queued", "--json", "--broker-state", state_file)
    assert json.loads(r.stdout)[0]["executions"]["nobody"]["status"] == "QUEUED"
    r = cli("push", out, "nobody", "--pub", keys[1], "--job-id", "cli-queued", "--broker-state", state_file)
    assert r.returncode == 1 and "already exists" in r.stderr


_MPY_VERIFY = """
import sys, binascii
sys.path.insert(0, %r)
from ota import ecdsa
ok = [ecdsa.verify(binascii.unhexlify(p), binascii.unhexlify(d), binascii.unhexlify(s)) for p, d, s in %r]
print(ok)
"""


@pytest.mark.parametrize("runtime", ["micropython", "micropython-esp32like"])
def test_firmware_verifies_host_signatures_on_micropython(runtime):
    """Keys and signatures made now by the host's cryptography; half of them altered."""
    import hashlib
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    exe = ROOT / ".venv" / "bin" / runtime
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (the ESP32-like runtime is built separately)")
    cases, want = [], []
    for i in range(6):
        k = ec.generate_private_key(ec.SECP256R1())
        pub = k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        text = f"manifest {i}"
        sig = ota.sign(k, text)
        if i % 2:
            text += " altered"
        cases.append((pub.hex(), hashlib.sha256(text.encode()).hexdigest(), sig))
        want.append(i % 2 == 0)
    r = subprocess.run([str(exe), "-X", "heapsize=80k", "-c", _MPY_VERIFY % (str(ROOT / "firmware"), cases)],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == repr(want).replace("'", ""), r.stdout + r.stderr


def test_build_image_checks_the_image_against_the_board(keys, tmp_path):
    from host_tools.sim.rom import build_image
    good, other = tmp_path / "esp32.bin", tmp_path / "s3.bin"
    good.write_bytes(build_image("esp32", b"\x01" * 5000))
    other.write_bytes(build_image("esp32s3", b"\x01" * 5000))
    out = tmp_path / "img.ota"
    r = cli("build", "--image", good, "--board", "esp32-devkitc", "--key", keys[0], "-o", out,
            "--version", "1.24.1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["chip"] == "esp32"
    b = ota.read_bundle(out)
    assert b.kind == "image" and b.blob == good.read_bytes()
    r = cli("build", "--image", other, "--board", "esp32-devkitc", "--key", keys[0], "-o", tmp_path / "x.ota")
    assert r.returncode == 1 and "ESP32-S3" in r.stderr and not (tmp_path / "x.ota").exists()


def test_build_for_a_board_with_a_romfs_partition_makes_one_romfs_image(keys, tmp_path):
    """--board sim (romfs_size in its definition) or --romfs: the app as one ROMFS image of .mpy
    files, as the board's partition holds it; the root-only files stay out."""
    from mpremote.romfs import VfsRomWriter
    out = tmp_path / "rom.ota"
    r = cli("build", "--board", "sim", "--key", keys[0], "-o", out, "--version", "0.7.1", "--json")
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)
    assert built["kind"] == "romfs" and built["files"] == 1 and built["mpy_arch"] == "x64"
    assert "ROMFS image" in cli("build", "--romfs", "--key", keys[0], "-o", tmp_path / "x.ota").stdout
    b = ota.read_bundle(out)
    assert [f["path"] for f in b.manifest["files"]] == ["romfs.img"]
    assert b.blob.startswith(VfsRomWriter.ROMFS_HEADER)
    from host_tools import FIRMWARE_DIR
    from host_tools.device import romfs
    from host_tools.device.deploy import local_files
    rom, on_fs = romfs.split(local_files(FIRMWARE_DIR, "x64")[0])  # what `deploy --romfs` lays
    assert sorted(on_fs) == ["/boot.py", "/main.py", "/otaboot.mpy", "/otaboot_rom.mpy"] and "/app.mpy" in rom
    assert b.blob == romfs.build_image(rom)
