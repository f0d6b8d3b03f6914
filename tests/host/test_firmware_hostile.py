"""Hostile deltas and a bad day on flash, against the whole firmware on a virtual board with the
real local broker and shadow service (issue 13): a delta that would break the board is rejected
naming the field and nothing is written; a port that cannot connect is rolled back after the next
boot and refused afterwards; a state the service cannot take is reported as an error and not
re-applied by other clients' GETs; a corrupt spool meta.json and stray files cost nothing."""
import json
import time

import pytest

from _broker_fixtures import connected_board, local_broker  # noqa: F401  (module-scoped broker + shadow service)
from host_tools.device.link import BoardLink
from host_tools.cloud.shadow_api import LocalShadow

THING = "grid-hostile-001"
INTERVAL_S = 1


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def board(local_broker, tmp_path_factory):
    # On the unix port: the unreportable-state case applies 4.5 KB of rules, which a board at 112,000 B
    # cannot (tests/host/test_large_desired.py: it refuses such a delta, naming its size).
    with connected_board(local_broker, tmp_path_factory.mktemp("hostile"), THING, INTERVAL_S, runtime="unix") as vb:
        yield vb


def reboot(vb):
    mark = len(vb.log())
    with BoardLink(vb.port) as link:
        link.soft_reset()
    vb.wait_for_log("net: connected", timeout=60, start=mark)
    return mark


@pytest.fixture
def shadow(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as s:
        yield s


def reported(shadow):
    return shadow.get(THING).get("state", {}).get("reported", {})


def clear_desired(shadow):
    desired = shadow.get(THING).get("state", {}).get("desired") or {}
    if desired:
        shadow.set_desired(THING, {k: None for k in desired})


def test_deltas_that_would_break_the_board_are_rejected_and_nothing_is_written(board, shadow):
    flash_cfg = board.flash_dir / "config.json"
    before = flash_cfg.read_bytes()
    mark = len(board.log())
    for state, field in (({"interval_s": 1e306}, "interval_s"), ({"watchdog_s": 1e306}, "watchdog_s"),
                         ({"spool": {"dir": "/config.json"}}, "spool.dir"),
                         ({"mqtt": {"telemetry_prefix": "#"}}, "mqtt.telemetry_prefix"),
                         ({"wifi": {"ssid": "\U0001F600"}}, "wifi.ssid")):  # sent as \ud83d\ude00
        shadow.set_desired(THING, state)
        err = wait_until(lambda: any(p.startswith(field + ":") for p in
                                     (reported(shadow).get("config_error") or {}).get("problems", [])),
                         15, f"config_error naming {field}")
        assert err
        clear_desired(shadow)
    assert flash_cfg.read_bytes() == before
    assert "Traceback" not in board.log()[mark:]


def test_an_unreportable_state_is_an_error_and_other_clients_gets_rewrite_nothing(board, shadow):
    flash_cfg = board.flash_dir / "config.json"
    cfg = json.loads(flash_cfg.read_text())
    # valid rules whose echo cannot fit beside them in the 8 KB shadow (desired + reported)
    rules = [dict(r) for r in cfg["rules"]]
    base = dict(cfg["rules"][0])
    while len(json.dumps(rules)) < 4500:
        r = dict(base)
        r["name"] = "pad-%03d-%s" % (len(rules), "x" * 30)
        rules.append(r)
    shadow.set_desired(THING, {"rules": rules})
    err = wait_until(lambda: [p for p in (reported(shadow).get("config_error") or {}).get("problems", [])
                              if p.startswith("report:")], 20, "the refused report as config_error")
    assert "413" in err[0], err
    version = json.loads(flash_cfg.read_text())["version"]
    mtime = flash_cfg.stat().st_mtime_ns
    mark = len(board.log())
    for _ in range(8):                                    # any client's GET resends the delta
        shadow.get(THING)
    time.sleep(2 * INTERVAL_S)   # (a negative check: the board had time to react to 8 GETs)
    assert board.log().count("delta v", mark) <= 1, board.log()[mark:]
    assert flash_cfg.stat().st_mtime_ns == mtime and json.loads(flash_cfg.read_text())["version"] == version
    shadow.set_desired(THING, {"rules": cfg["rules"]})
    wait_until(lambda: reported(shadow).get("config_error") is None, 20, "config_error cleared")
    clear_desired(shadow)


def test_a_port_that_cannot_connect_is_rolled_back_and_then_refused(board, shadow, local_broker):
    flash_cfg = board.flash_dir / "config.json"
    shadow.set_desired(THING, {"mqtt": {"port": 1}})
    wait_until(lambda: json.loads(flash_cfg.read_text())["mqtt"]["port"] == 1, 15, "port 1 applied")
    mark = len(board.log())
    with BoardLink(board.port) as link:
        link.soft_reset()                                  # the new port takes effect at boot
    board.wait_for_log("rolled back to the last settings that connected", timeout=60, start=mark)
    board.wait_for_log("net: connected", timeout=60, start=mark)
    assert json.loads(flash_cfg.read_text())["mqtt"]["port"] == local_broker.port
    err = wait_until(lambda: reported(shadow).get("config_error"), 20, "the rollback reported")
    assert any(p.startswith("mqtt.port:") for p in err["problems"]), err
    # the desired port 1 is still in the shadow: it comes back as a delta and is refused
    wait_until(lambda: any("could not connect with it" in p for p in
                           (reported(shadow).get("config_error") or {}).get("problems", [])),
               20, "the port refused afterwards")
    assert json.loads(flash_cfg.read_text())["mqtt"]["port"] == local_broker.port
    clear_desired(shadow)


def test_corrupt_spool_meta_and_stray_entries_cost_no_reading(board, local_broker):
    with local_broker.probe("edgeshadow-monitor") as mon:
        mon.subscribe(f"dt/{THING}/telemetry")
        first = mon.wait_for(lambda m: True, timeout=20).json()[0]["seq"]
        spool = board.flash_dir / "spool"
        with BoardLink(board.port) as link:
            (spool / "meta.json").write_text(json.dumps({"head": 1 + (1 << 20), "dropped": 0}))
            (spool / "zzzzzzzz.seg").write_text("junk")
            (spool / "00000fff.seg").mkdir(exist_ok=True)
            link.soft_reset()
        board.wait_for_log("net: connected", timeout=60)
        seqs = set()

        def gapless():
            for m in mon.messages:
                seqs.update(r["seq"] for r in m.json())
            top = max(seqs)
            return top > first + 5 and all(s in seqs for s in range(first, top))
        wait_until(gapless, 30, "readings without a gap across the corrupt boot")
        assert max(seqs) < 1 << 20  # numbering went on from the segments, no jump
    assert "spool: meta.json not used" in board.log() and "zzzzzzzz.seg" in board.log()
