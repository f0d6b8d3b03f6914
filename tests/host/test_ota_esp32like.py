"""An over-the-air update on the ESP32-like runtime (32-bit, float32), the app sent as .mpy as
`deploy` sends it. The job (the agent, the ~6 KB manifest fetched from the stream, the P-256
check, the download) needs OTA_HEAP more than the firmware's own runtimes.NEEDED_HEAP: at that heap
the update is verified, downloaded and confirmed with no MemoryError. (At NEEDED_HEAP alone the
manifest's buffer cannot be allocated and the job ends FAILED, the board unchanged. Closing the
gap, a manifest read line by line from flash, is open work.)"""
import pytest

from _broker_fixtures import local_broker  # noqa: F401
from _ota_fixtures import executions, firmware_variant, prepare_flash, wait_until
from host_tools.cloud import ota
from host_tools.sim import runtimes
from host_tools.device.boards import load_board
from host_tools.sim.board import VirtualBoard

pytestmark = pytest.mark.skipif(not runtimes.available("esp32like"),
                                reason="the ESP32-like runtime is not built (`make esp32like`)")


OTA_HEAP = 96 * 1024  # the job's need beside the firmware today (see the module docstring)


def test_update_on_the_esp32like_runtime_at_the_firmware_heap_plus_ota(local_broker, tmp_path):
    key, pub = ota.keygen(tmp_path / "k")
    arch = load_board("sim")["mpy_arch"]
    prepare_flash(tmp_path / "b", "ota-esp32like-001", local_broker, pub, mpy_arch=arch)
    bundle = ota.build(firmware_variant(tmp_path / "fw", "0.2.0"), key, mpy_arch=arch, version="0.2.0", seq=2)
    with VirtualBoard(tmp_path / "b", thing="ota-esp32like-001", scenario="nominal", runtime="esp32like",
                      heap=runtimes.NEEDED_HEAP + OTA_HEAP) as vb:
        vb.wait_for_log("net: connected", timeout=90)
        admin_crt, admin_key = local_broker.client_cert("edgeshadow-admin")
        with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert,
                           admin_crt, admin_key) as admin:
            job = ota.push_local(admin, bundle, [vb.thing])
            wait_until(lambda: executions(local_broker, job)[vb.thing] in ("SUCCEEDED", "FAILED", "REJECTED"),
                       120, "the update")
        log = vb.log()
        assert executions(local_broker, job)[vb.thing] == "SUCCEEDED", log[-2000:]
        assert "MemoryError" not in log and "memory allocation failed" not in log
        assert "edgeshadow firmware v0.2.0" in log
