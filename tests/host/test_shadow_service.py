"""The local shadow service: its document model against moto's iot-data, and the MQTT protocol
against real Mosquitto with paho-mqtt clients; `edgeshadow shadow` locally and on (moto) AWS."""
import json

import boto3
import pytest
from moto import mock_aws

from _broker_fixtures import connected_board, local_broker  # noqa: F401  (fixture)
from host_tools import cli
from host_tools.errors import EdgeshadowError
from host_tools.cloud.shadow_api import AwsShadow, LocalShadow, parse_assignments
from host_tools.cloud.shadow_service import MAX_STATE_BYTES, ShadowStore, is_rejected


class Clock:
    def __init__(self, t=1_700_000_000):
        self.t = t

    def __call__(self):
        return self.t


def upd(store, doc, thing="t1", **kw):
    return store.update(thing, json.dumps(doc).encode(), **kw)


# -- the model, rejections ----------------------------------------------------------------------

@pytest.mark.parametrize("payload, code, message", [
    (b"{not json", 400, "Invalid JSON"),
    (b"[1, 2]", 400, "Invalid JSON"),
    (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    (b'{"desired": {"a": 1}}', 400, "Missing required node: state"),
    (b'{"state": 5}', 400, "State node must be an object"),
    (b'{"state": {"delta": {"a": 1}}}', 400, "State contains an invalid node: 'delta'"),
    (b'{"state": {"desired": [1]}}', 400, "Desired node must be an object"),
    (b'{"state": {"reported": "x"}}', 400, "Reported node must be an object"),
    (b'{"state": {"desired": {"a": 1}}, "version": "3"}', 400, "Invalid version"),
    (b'{"state": {"desired": {"a": 1}}, "clientToken": "' + b"x" * 65 + b'"}', 400, "Invalid clientToken"),
    (b'{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}', 400,
     "JSON contains too many levels of nesting; maximum is 6"),
])
def test_update_rejections_name_the_problem_and_change_nothing(payload, code, message):
    store = ShadowStore(clock=Clock())
    upd(store, {"state": {"reported": {"a": 0}}})
    before = store.snapshot("t1")
    response, delta, documents = store.update("t1", payload)
    assert is_rejected(response) and (response["code"], response["message"]) == (code, message)
    assert delta is None and documents is None and "clientToken" not in response
    assert store.snapshot("t1") == before


def test_six_levels_are_allowed():
    store = ShadowStore()
    response, _, _ = upd(store, {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}})
    assert not is_rejected(response)


def test_version_conflict_and_token_echo():
    store = ShadowStore(clock=Clock())
    assert upd(store, {"state": {"desired": {"a": 1}}})[0]["version"] == 1
    rej, _, _ = upd(store, {"state": {"desired": {"a": 2}}, "version": 5, "clientToken": "tok-1"})
    assert (rej["code"], rej["message"], rej["clientToken"]) == (409, "Version conflict", "tok-1")
    acc, _, docs = upd(store, {"state": {"desired": {"a": 2}}, "version": 1, "clientToken": "tok-2"})
    assert acc["version"] == 2 and acc["clientToken"] == "tok-2" and docs["clientToken"] == "tok-2"


def test_state_over_8_kb_is_413_and_changes_nothing():
    store = ShadowStore()
    upd(store, {"state": {"reported": {"a": "x" * (MAX_STATE_BYTES // 2)}}})
    rej, _, _ = upd(store, {"state": {"desired": {"b": "y" * (MAX_STATE_BYTES // 2)}}})
    assert (rej["code"], rej["message"]) == (413, "The payload exceeds the maximum size allowed")
    assert "desired" not in store.snapshot("t1")["state"] and store.snapshot("t1")["version"] == 1


def test_get_and_delete_of_a_missing_shadow_are_404():
    store = ShadowStore()
    for doc in (store.get("ghost", b'{"clientToken": "c"}'), store.delete("ghost")):
        assert doc["code"] == 404 and doc["message"] == "No shadow exists with name: 'ghost'"
    assert store.get("ghost", b'{"clientToken": "c"}')["clientToken"] == "c"


def test_bad_thing_names_are_rejected_without_touching_files(tmp_path):
    store = ShadowStore(tmp_path)
    rej, _, _ = store.update("..", b'{"state": {"desired": {"a": 1}}}')
    assert rej["code"] == 400 and "thing name" in rej["message"]
    assert list(tmp_path.iterdir()) == []


# -- the model, accepted documents --------------------------------------------------------------

def test_accepted_delta_documents_and_metadata():
    clock = Clock(1000)
    store = ShadowStore(clock=clock)
    upd(store, {"state": {"reported": {"interval_s": 10, "fw": "1.0"}}})
    clock.t = 1010
    acc, delta, docs = upd(store, {"state": {"desired": {"interval_s": 5, "fw": "1.0"}}, "clientToken": "c1"})
    assert acc == {"state": {"desired": {"interval_s": 5, "fw": "1.0"}},
                   "metadata": {"desired": {"interval_s": {"timestamp": 1010}, "fw": {"timestamp": 1010}}},
                   "version": 2, "timestamp": 1010, "clientToken": "c1"}
    # only the differing field: fw is desired and reported alike
    assert delta == {"version": 2, "timestamp": 1010, "state": {"interval_s": 5},
                     "metadata": {"interval_s": {"timestamp": 1010}}, "clientToken": "c1"}
    assert docs["previous"]["version"] == 1 and docs["current"]["version"] == 2
    assert docs["previous"]["state"] == {"reported": {"interval_s": 10, "fw": "1.0"}}
    assert docs["current"]["state"]["desired"] == {"interval_s": 5, "fw": "1.0"}
    clock.t = 1020
    got = store.get("t1")
    assert got["state"]["delta"] == {"interval_s": 5} and got["version"] == 2 and got["timestamp"] == 1020
    assert got["metadata"]["reported"]["fw"] == {"timestamp": 1000}  # untouched fields keep their time
    # the device applies the value: the delta clears, no delta message
    acc, delta, _ = upd(store, {"state": {"reported": {"interval_s": 5}}})
    assert delta is None and "delta" not in store.get("t1")["state"]


def test_first_update_has_no_previous_and_nulls_remove_keys():
    store = ShadowStore()
    _, delta, docs = upd(store, {"state": {"desired": {"a": 1, "n": {"x": 1, "y": 2}}}})
    assert docs["previous"] is None and delta["state"] == {"a": 1, "n": {"x": 1, "y": 2}}
    upd(store, {"state": {"desired": {"a": None, "n": {"x": None}}}})
    assert store.get("t1")["state"]["desired"] == {"n": {"y": 2}}
    assert store.get("t1")["metadata"]["desired"] == {"n": {"y": store.get("t1")["metadata"]["desired"]["n"]["y"]}}
    upd(store, {"state": {"desired": None}})  # AWS: removes the whole section
    assert "desired" not in store.get("t1")["state"]


def test_delete_then_recreate_continues_the_version(tmp_path):
    store = ShadowStore(tmp_path, clock=Clock(5))
    upd(store, {"state": {"reported": {"a": 1}}})
    upd(store, {"state": {"reported": {"a": 2}}})
    assert store.delete("t1", b'{"clientToken": "d"}') == {"version": 3, "timestamp": 5, "clientToken": "d"}
    assert store.get("t1")["code"] == 404 and store.delete("t1")["code"] == 404
    acc, _, docs = upd(store, {"state": {"reported": {"b": 1}}})
    assert acc["version"] == 4 and docs["previous"] is None
    assert store.get("t1")["state"] == {"reported": {"b": 1}}


def test_shadows_persist_atomically_and_named_shadows_are_separate(tmp_path):
    store = ShadowStore(tmp_path, clock=Clock())
    upd(store, {"state": {"desired": {"interval_s": 5}}})
    upd(store, {"state": {"reported": {"x": 1}}}, name="aux")
    again = ShadowStore(tmp_path, clock=Clock())
    assert again.get("t1")["state"]["desired"] == {"interval_s": 5} and again.get("t1")["version"] == 1
    assert again.get("t1", name="aux")["state"] == {"reported": {"x": 1}}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["aux.json", "t1.json"]  # no temp files


def test_a_corrupt_state_file_is_named(tmp_path):
    (tmp_path / "t1.json").write_text("{half")
    with pytest.raises(EdgeshadowError, match="t1.json is not valid JSON"):
        ShadowStore(tmp_path).get("t1")


# -- the model against moto ---------------------------------------------------------------------

SEQUENCE = [
    {"state": {"reported": {"interval_s": 10, "fw": "1.0", "alerts": []}}},
    {"state": {"desired": {"interval_s": 5}}},
    {"state": {"desired": {"metrics": {"current": {"gain": 1.5, "offset": 0}, "voltage": {"gain": 1}}}}},
    {"state": {"reported": {"metrics": {"current": {"gain": 1.5, "offset": 1}}}}},
    {"state": {"reported": {"interval_s": 5}}},                       # reported catches up desired
    {"state": {"desired": {"metrics": {"current": {"offset": None}}}}},  # null inside a nested object
    {"state": {"desired": {"tags": ["a", "b"]}, "reported": {"tags": ["a"]}}},  # arrays are values
    {"state": {"desired": {"mode": "eco"}}, "version": 99},             # version conflict
    {"state": {"desired": {"mode": "eco"}, "reported": {"mode": "full"}}, "clientToken": "tk"},
    {"state": {"desired": {"mode": None}, "reported": {"mode": "eco"}}},  # desired cleared, reported set
    {"state": {"desired": {"interval_s": None, "tags": None}}},
    {"state": {"reported": {"metrics": {"voltage": 7}}}},                # object vs value
    {"state": {"desired": {"flag": True}, "reported": {"flag": 1}}},     # see the comment at step 12
    {"state": {"reported": {"flag": True}}},
    {"state": {}},                                                       # empty update still bumps
    {"state": {"desired": {"deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}}},
    {"state": None},                                                     # clears both (as moto)
    {"state": {"desired": {"after": "clear"}}},
]


def _prune_empty(d):
    # moto keeps {} for nested objects whose fields all match; AWS's delta lists only differing fields
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _prune_empty(v)
            if not v:
                continue
        out[k] = v
    return out


def test_same_updates_give_the_same_state_delta_and_version_as_moto():
    store = ShadowStore()
    with mock_aws():
        boto3.client("iot", region_name="us-east-1").create_thing(thingName="t1")
        data = boto3.client("iot-data", region_name="us-east-1")
        versions = []
        for i, req in enumerate(SEQUENCE):
            body = json.dumps(req)
            try:
                moto_acc = json.loads(data.update_thing_shadow(thingName="t1", payload=body)["payload"].read())
                moto_code = None
            except data.exceptions.ConflictException:
                moto_code = 409
            ours, _, _ = store.update("t1", body.encode())
            assert (ours.get("code") if is_rejected(ours) else None) == moto_code, f"step {i}: {req}"
            if moto_code is None:
                assert ours["version"] == moto_acc["version"], f"step {i}"
            moto_doc = json.loads(data.get_thing_shadow(thingName="t1")["payload"].read())
            mine = store.get("t1")
            moto_state = dict(moto_doc["state"])
            moto_delta = _prune_empty(moto_state.pop("delta", {}))
            mine_state = dict(mine["state"])
            mine_delta = mine_state.pop("delta", {})
            if i == 12:
                # moto compares with Python ==, so true == 1 and it shows no delta; JSON (and AWS)
                # tells true from 1, so ours shows {"flag": true}
                assert mine_delta == dict(moto_delta, flag=True), f"step {i}"
            else:
                assert mine_delta == moto_delta, f"step {i}: {req}"
            assert mine_state == moto_state, f"step {i}: {req}"
            assert mine["version"] == moto_doc["version"], f"step {i}"
            versions.append(mine["version"])
        assert versions[-1] == len(SEQUENCE) - 1  # every step but the conflict made a version


def test_desired_null_clears_the_section_unlike_moto():
    # AWS documents `"desired": null` as removing the whole desired section; moto 5.2.5 ignores it.
    store = ShadowStore()
    upd(store, {"state": {"desired": {"a": 1}, "reported": {"b": 2}}})
    upd(store, {"state": {"desired": None}})
    assert store.get("t1")["state"] == {"reported": {"b": 2}}


# -- the service over MQTT (real Mosquitto, mutual TLS) -----------------------------------------

def _on(topic):
    return lambda m: m.topic == topic


def test_update_and_get_over_mqtt(local_broker):
    thing = "svc-1"
    base = f"$aws/things/{thing}/shadow"
    with local_broker.probe(thing) as dev:
        dev.subscribe(f"{base}/#")
        dev.publish(f"{base}/get", {"clientToken": "g0"})
        rej = dev.wait_for(_on(f"{base}/get/rejected")).json()
        assert (rej["code"], rej["clientToken"]) == (404, "g0")
        dev.publish(f"{base}/update", {"state": {"reported": {"interval_s": 10}}, "clientToken": "u1"})
        assert dev.wait_for(_on(f"{base}/update/accepted")).json()["clientToken"] == "u1"
        with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert,
                         *local_broker.client_cert("edgeshadow-admin")) as admin:
            acc = admin.set_desired(thing, {"interval_s": 5})
            assert acc["version"] == 2 and acc["state"] == {"desired": {"interval_s": 5}}
        delta = dev.wait_for(_on(f"{base}/update/delta")).json()
        assert delta["state"] == {"interval_s": 5} and delta["version"] == 2
        docs = dev.wait_for(lambda m: m.topic == f"{base}/update/documents"
                            and m.json()["current"]["version"] == 2).json()
        assert docs["previous"]["state"] == {"reported": {"interval_s": 10}}
        dev.publish(f"{base}/update", {"state": {"reported": {"interval_s": 5}}, "clientToken": "u3"})
        dev.wait_for(lambda m: m.topic == f"{base}/update/accepted" and m.json().get("clientToken") == "u3")
        dev.publish(f"{base}/get", {"clientToken": "g1"})
        got = dev.wait_for(_on(f"{base}/get/accepted")).json()
        assert got["state"] == {"desired": {"interval_s": 5}, "reported": {"interval_s": 5}}
        assert got["version"] == 3 and got["clientToken"] == "g1"
        dev.publish(f"{base}/update", b"{broken", qos=1)
        rej = dev.wait_for(_on(f"{base}/update/rejected")).json()
        assert (rej["code"], rej["message"]) == (400, "Invalid JSON")
        dev.publish(f"{base}/delete", {"clientToken": "d1"})
        assert dev.wait_for(_on(f"{base}/delete/accepted")).json()["version"] == 4
    assert local_broker.service.store.snapshot(thing) is None


def test_named_shadow_over_mqtt(local_broker):
    thing = "svc-2"
    base = f"$aws/things/{thing}/shadow/name/aux"
    with local_broker.probe(thing) as dev:
        dev.subscribe(f"{base}/update/accepted", f"$aws/things/{thing}/shadow/update/accepted")
        dev.publish(f"{base}/update", {"state": {"reported": {"x": 1}}})
        assert dev.wait_for(_on(f"{base}/update/accepted")).json()["version"] == 1
    assert local_broker.service.store.snapshot(thing) is None
    assert local_broker.service.store.snapshot(thing, "aux")["state"] == {"reported": {"x": 1}}


def test_local_client_raises_rejections(local_broker):
    with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert,
                     *local_broker.client_cert("edgeshadow-admin")) as admin:
        with pytest.raises(EdgeshadowError, match="404 No shadow exists with name: 'never-seen'"):
            admin.get("never-seen")
        with pytest.raises(EdgeshadowError, match="413"):
            admin.set_desired("big-1", {"blob": "x" * (MAX_STATE_BYTES + 1)})


def test_shadow_cli_against_the_local_broker(local_broker, capsys):
    workdir = local_broker.state_file().parent
    assert cli.main(["shadow", "set", "cli-1", "interval_s=5", "ntp.host=pool.ntp.org", "mqtt.keepalive_s=60",
                     "--workdir", str(workdir), "--no-wait"]) == 0
    assert "stored shadow version 1" in capsys.readouterr().out
    assert cli.main(["shadow", "get", "cli-1", "--workdir", str(workdir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"]["desired"] == {"interval_s": 5, "ntp": {"host": "pool.ntp.org"}, "mqtt": {"keepalive_s": 60}}
    assert doc["state"]["delta"] == doc["state"]["desired"]
    # bad input: one clear line, exit 1, nothing changed
    assert cli.main(["shadow", "set", "cli-1", "interval_s", "--workdir", str(workdir)]) == 1
    assert "has no '='" in capsys.readouterr().err
    assert local_broker.service.store.snapshot("cli-1")["version"] == 1
    assert cli.main(["shadow", "get", "cli-1", "--workdir", str(workdir / "nowhere")]) == 1
    assert "no local broker is running" in capsys.readouterr().err


# -- AWS through boto3 (moto) and the assignment parser -----------------------------------------

def test_aws_client_with_moto(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("iot", region_name="eu-west-1").create_thing(thingName="aws-1")
        shadow = AwsShadow(region="eu-west-1")
        with pytest.raises(EdgeshadowError, match="AWS IoT has no shadow for aws-1"):
            shadow.get("aws-1")
        assert cli.main(["shadow", "set", "aws-1", "interval_s=5", "--aws", "--region", "eu-west-1",
                         "--no-wait"]) == 0
        assert cli.main(["shadow", "get", "aws-1", "--aws", "--region", "eu-west-1"]) == 0
        out = capsys.readouterr().out
        doc = json.loads(out[out.index("{\n  \"metadata\""):])
        assert doc["state"]["desired"] == {"interval_s": 5} and doc["version"] == 1
        assert shadow.set_desired("aws-1", {"interval_s": None})["version"] == 2


def test_parse_assignments():
    assert parse_assignments(["interval_s=5", "name=pump", "on=true", "x=null", "a.b=1.5", "a.c=[1,2]",
                              "s=\"5\"", "h=pool.ntp.org", "q=\"{x\""]) == {
        "interval_s": 5, "name": "pump", "on": True, "x": None, "a": {"b": 1.5, "c": [1, 2]}, "s": "5",
        "h": "pool.ntp.org", "q": "{x"}
    for bad, why in ((["interval_s"], "no '='"), (["=5"], "empty key"), (["a..b=1"], "empty key"),
                     (["a=1", "a.b=2"], "already set"), ([], "nothing to set"),
                     # looks like JSON but is not: refused naming the key, never stored as a string
                     (["k={bad"], "k={bad: not valid JSON"), (["rules=[1,"], "rules=\\[1,: not valid JSON"),
                     (["on=True"], "on=True: not valid JSON"), (["x=NaN"], "x=NaN: not valid JSON"),
                     (["n=1e"], "n=1e: not valid JSON"), (["e="], "e=: not valid JSON")):
        with pytest.raises(EdgeshadowError, match=why):
            parse_assignments(bad)


# -- `shadow set` against a virtual board: checked first, then the board's answer awaited -------

BOARD_THING = "shadow-set-001"


@pytest.fixture(scope="module")
def board(local_broker, tmp_path_factory):
    """The firmware on a virtual board, connected to this module's broker and shadow service."""
    with connected_board(local_broker, tmp_path_factory.mktemp("shadow-set"), BOARD_THING, 2) as vb:
        yield vb


def _set(local_broker, *words):
    return cli.main(["shadow", "set", BOARD_THING, *words, "--workdir", str(local_broker.state_file().parent)])


def test_shadow_set_waits_for_the_board_to_apply(local_broker, board, capsys):
    assert _set(local_broker, "interval_s=3", "--timeout", "30", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["result"] == "applied" and out["desired"] == {"interval_s": 3}
    assert local_broker.service.store.snapshot(BOARD_THING)["state"]["reported"]["interval_s"] == 3


def test_a_delta_the_board_rejects_reaches_the_sender_with_its_reason(local_broker, board, capsys):
    # the pipeline is checked by the board (it holds the whole config): its answer comes back
    assert _set(local_broker, 'metrics.nope={"unit": "V"}', "--timeout", "30") == 1
    err = capsys.readouterr().err
    assert f"{BOARD_THING} rejected shadow version" in err and "metrics.nope: unknown metric" in err, err
    assert _set(local_broker, "metrics=null", "--timeout", "30") == 0  # only leaves desired


def test_shadow_set_refuses_before_sending_what_the_firmware_refuses(local_broker, board, capsys):
    def desired():
        return ((local_broker.service.store.snapshot(BOARD_THING) or {}).get("state") or {}).get("desired")

    before = desired()
    for words, message in ((["interval_s=-5"], "interval_s: must be a number >= 1"),
                           (["k={bad"], "k={bad: not valid JSON"),
                           (["mqtt.keepalive_s=5"], "mqtt.keepalive_s: must be an integer 30..1200"),
                           (["colour=red"], "colour: unknown key")):
        assert _set(local_broker, *words) == 1, words
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert desired() == before  # nothing sent


def test_shadow_set_without_an_answer_exits_3_and_names_what_stays(local_broker, capsys):
    assert cli.main(["shadow", "set", "offline-001", "interval_s=4", "--timeout", "1",
                     "--workdir", str(local_broker.state_file().parent)]) == 3
    err = capsys.readouterr().err
    assert "no answer from offline-001 within 1 s" in err and "shadow version 1" in err, err


def test_an_invalid_thing_name_is_refused_at_once(local_broker, capsys):
    import time
    for verb, extra in (("get", []), ("set", ["interval_s=3"])):
        t0 = time.monotonic()
        assert cli.main(["shadow", verb, "a/b", *extra, "--workdir", str(local_broker.state_file().parent)]) == 1
        err = capsys.readouterr().err
        assert "thing name 'a/b' is not valid" in err, err
        print(f"shadow {verb} a/b answered in {time.monotonic() - t0:.2f} s")
