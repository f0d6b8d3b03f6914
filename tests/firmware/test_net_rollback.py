# net.rollback: connection settings a delta set are a trial until they connect; a trial that never
# connects is rolled back to the last settings that did, reported, and refused afterwards (issue 13).
import json

from _helpers import tmpdir
from edge.config import load
from net.rollback import Rollback
from test_edge_fixtures import grid_cfg


def cfg_with(port):
    c = grid_cfg()
    c["mqtt"] = {"endpoint": "broker.local", "port": port}
    return load(c)


def test_a_trial_that_never_connects_is_rolled_back_reported_and_refused():
    path = tmpdir() + "/config.ok.json"
    good, bad = cfg_with(8883), cfg_with(1)
    rb = Rollback(path)
    rb.connected(good)
    rb.trying(good, bad)
    bad["version"] = 4
    rb = Rollback(path)                                   # the next boot
    err, restored, trial, refused = rb.at_boot(bad)
    assert err is None and trial and refused is None
    new, problems = rb.roll_back(bad)
    assert new["mqtt"]["port"] == 8883 and new["version"] == 5
    assert problems == ["mqtt.port: could not connect with 1; rolled back to the last settings that connected"]
    rb = Rollback(path)                                   # the boot after the rollback
    err, restored, trial, refused = rb.at_boot(new)
    assert err["problems"] == problems and restored == {"mqtt": {"port": 8883}} and not trial
    assert rb.refuses(bad) and rb.refuses(bad)[0].startswith("mqtt.port: could not connect with it")
    assert rb.refuses(cfg_with(8884)) == []               # another value is tried normally


def test_a_trial_that_connects_becomes_the_good_one():
    path = tmpdir() + "/config.ok.json"
    a, b = cfg_with(8883), cfg_with(8884)
    rb = Rollback(path)
    rb.connected(a)
    rb.trying(a, b)
    rb = Rollback(path)
    assert rb.trial(b)
    rb.connected(b)
    rb = Rollback(path)
    assert not rb.trial(b) and rb.state["good"]["mqtt"]["port"] == 8884
    with open(path) as f:
        assert json.loads(f.read())["trial"] is None


def test_a_connect_with_the_old_settings_keeps_the_pending_trial():
    # the delta arrives over the old link; its settings take effect at the next boot
    path = tmpdir() + "/config.ok.json"
    a, b = cfg_with(8883), cfg_with(1)
    rb = Rollback(path)
    rb.connected(a)
    rb.trying(a, b)
    rb.connected(a)                                       # a reconnect before the reboot
    assert Rollback(path).trial(b)


def test_no_state_file_no_rollback():
    rb = Rollback(tmpdir() + "/none.json")
    assert rb.at_boot(cfg_with(1)) == (None, None, False, None)
