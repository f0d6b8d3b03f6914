"""A desired state too large for the board's heap, on the ESP32-like runtime at the board's
112,000 B (firmware in ROMFS): 4.5 KB of rules make every shadow document 10-16 KB with desired,
reported, delta and metadata. The board could not take the pieces: it dropped its link, and each
reconnect's GET brought the same document again, for good. It now skips the document (read through
its receive buffer and dropped, still acknowledged), refuses that version in the shadow with the
reason, and stays online; once the rules are taken out of desired, the next delta applies."""
import json

import pytest

from _broker_fixtures import connected_board, local_broker  # noqa: F401  (module-scoped broker + shadow service)
from host_tools import cli
from host_tools.cloud.shadow_api import LocalShadow
from host_tools.sim import runtimes

pytestmark = pytest.mark.skipif(not runtimes.available("esp32like"),
                                reason="the ESP32-like runtime is not built (`make esp32like`)")
THING = "grid-large-001"
SKIPPED = "more than the heap can take: not read"


@pytest.fixture(scope="module")
def board(local_broker, tmp_path_factory):
    with connected_board(local_broker, tmp_path_factory.mktemp("large"), THING, 1, runtime="esp32like") as vb:
        yield vb


def test_a_desired_state_too_large_for_the_heap_is_refused_and_the_board_stays_online(board, local_broker, capsys):
    cfg = json.loads((board.flash_dir / "config.json").read_text())
    rules = [dict(r) for r in cfg["rules"]]
    while len(json.dumps(rules)) < 4500:
        r = dict(cfg["rules"][0])
        r["name"] = "pad-%03d-%s" % (len(rules), "x" * 30)
        rules.append(r)
    mark = len(board.log())
    # as a user sets it: the board's answer comes back to `shadow set`, exit 1 with the reason
    code = cli.main(["shadow", "set", THING, "rules=" + json.dumps(rules), "--timeout", "30",
                     "--workdir", str(local_broker.state_file().parent)])
    err = capsys.readouterr().err
    assert code == 1 and "more than this board's heap can take in" in err, err
    at = board.wait_for_log(SKIPPED, start=mark)
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as shadow, \
            local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe(f"dt/{THING}/telemetry")
        fresh = mon.wait_for(lambda m: True, timeout=20).json()   # readings still arrive...
        assert fresh and "link down" not in board.log()[mark:], board.log()[mark:][-3000:]  # ...on the same link
        assert board.log().count("net: connected", mark) == 0
        assert json.loads((board.flash_dir / "config.json").read_text())["rules"] == cfg["rules"]
        # the operator takes the rules out of desired; a small delta applies again
        shadow.set_desired(THING, {"rules": None})
        shadow.set_desired(THING, {"interval_s": 2})
        board.wait_for_log("applied: interval_s", timeout=30, start=at)
        assert json.loads((board.flash_dir / "config.json").read_text())["interval_s"] == 2
        assert "link down" not in board.log()[mark:], board.log()[mark:][-3000:]
