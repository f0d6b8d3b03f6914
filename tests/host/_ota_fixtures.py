"""Virtual boards ready for over-the-air updates, and signed bundles made at run time.

    board = ota_board(root, "ota-001", local_broker, pub)  # firmware, certs, config, OTA key on flash
    fw = firmware_variant(tmp, "0.2.0", extra={"app.py": "...append..."})
    bundle = build_app(fw, key, version="0.2.0", seq=2)

Virtual boards run on runtimes.default() (EDGESHADOW_RUNTIME). On the ESP32-like runtime a board
has the sim definition's ROMFS partition and its GC heap (112,000 B): there the firmware is laid
into ROMFS and updates are ROMFS images (ROMFS below), as on such a board in the field; from files
the firmware does not run in that heap.
"""
import json
import shutil
import time

from host_tools import FIRMWARE_DIR

from host_tools.cloud import certs

from host_tools.cloud import ota
from host_tools.demo import device_config
from host_tools.device.boards import load_board
from host_tools.sim import runtimes
from host_tools.sim.board import VirtualBoard

INTERVAL_S = 2
ROMFS = runtimes.default() == "esp32like" and bool(load_board("sim").get("romfs_size"))
ARCH = load_board("sim")["mpy_arch"]


def build_app(fw_dir, key, **kw):
    """An app bundle as the test boards take it: a ROMFS image of .mpy on a ROMFS board (ROMFS),
    the app files otherwise."""
    if ROMFS:
        kw.update(romfs=True, mpy_arch=ARCH)
    return ota.build(fw_dir, key, **kw)


def wait_until(fn, timeout, what, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def prepare_flash(workdir, thing, env, pub, interval_s=INTERVAL_S, mpy_arch=None, firmware=True):
    """A board folder as `deploy [--mpy]` + `inject --ota-key` leave it (written directly: quicker).
    firmware="romfs": laid as the virtual board lays a fresh one on the ESP32-like runtime (its
    modules in the ROMFS partition, boot.py, main.py and otaboot.py in the filesystem); the default
    when ROMFS. firmware="files": on the filesystem whatever the runtime."""
    from host_tools.device.deploy import local_files
    flash = workdir / "flash"
    if firmware is True and ROMFS:
        firmware = "romfs"
    files = local_files(FIRMWARE_DIR, mpy_arch)[0] if firmware in (True, "files") else {}
    if firmware == "romfs":
        VirtualBoard(workdir, thing=thing, scenario=None, runtime="esp32like", romfs="firmware")._prepare()
    for path, data in files.items():
        dest = flash / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    crt, key = env.device_cert(thing)
    (flash / "certs").mkdir(parents=True, exist_ok=True)
    (flash / "certs" / "device.der").write_bytes(certs.to_der(crt))
    (flash / "certs" / "device.key.der").write_bytes(certs.to_der(key))
    (flash / "certs" / "root-ca.der").write_bytes(certs.to_der(env.broker.ca_cert))
    if pub is not None:
        (flash / "certs" / "ota.pub").write_bytes(ota.board_pubkey(pub))
    cfg = device_config(env.port, interval_s)
    cfg["thing"] = thing
    cfg["mqtt"].update(ca="/certs/root-ca.der", cert="/certs/device.der", key="/certs/device.key.der")
    (flash / "config.json").write_text(json.dumps(cfg))
    return flash


def ota_board(root, thing, env, pub, **kw):
    prepare_flash(root / thing, thing, env, pub, **kw)
    return VirtualBoard(root / thing, thing=thing, scenario="nominal")


def firmware_variant(out, version, replace=None):
    """A copy of the firmware with edge.VERSION = version and files replaced {rel path: text}."""
    shutil.copytree(FIRMWARE_DIR, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    init = out / "edge" / "__init__.py"
    text = init.read_text()
    init.write_text(text.replace('VERSION = "', f'VERSION = "{version}"  # was "', 1))
    for rel, body in (replace or {}).items():
        (out / rel).write_text(body)
    return out


def state(board):
    try:
        return json.loads((board.flash_dir / "update" / "state.json").read_text())
    except (OSError, ValueError):
        return None


def executions(env, job_id):
    job = env.jobs.store.jobs[job_id]
    return {t: e["status"] for t, e in job["executions"].items()}
