"""Over-the-air app updates on virtual boards against the real broker and the local jobs/streams
service: signed manifests, staged + SHA-256-checked files, the atomic slot switch, pending ->
confirmed, rollback of an app that raises at start, rejection of forged or damaged updates."""
import json

import pytest

from _broker_fixtures import local_broker  # noqa: F401  (module-scoped broker + services)
from _ota_fixtures import executions, firmware_variant, ota_board, state, wait_until
from host_tools import ota
from host_tools.sim.board import stop_boards


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return ota.keygen(tmp_path_factory.mktemp("otakey"))


@pytest.fixture(scope="module")
def admin(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as j:
        yield j


def test_one_board_update_is_confirmed_and_reported(local_broker, keys, admin, tmp_path):
    key, pub = keys
    fw = firmware_variant(tmp_path / "fw", "0.2.0")
    bundle = ota.build(fw, key, version="0.2.0")
    b = ota_board(tmp_path, "ota-one-001", local_broker, pub)
    b.start()
    try:
        b.wait_for_log("net: connected", timeout=60)
        job = ota.push_local(admin, bundle, [b.thing])
        wait_until(lambda: executions(local_broker, job)[b.thing] in ("SUCCEEDED", "FAILED", "REJECTED"),
                   90, "the job to end")
        print(b.log()[-3000:])
        assert executions(local_broker, job)[b.thing] == "SUCCEEDED"
        st = state(b)
        assert st["active"] == "a" and st["pending"] is None and st["result"] is None
        assert "edgeshadow firmware v0.2.0" in b.log()
    finally:
        b.stop()
