"""The local shadow store refuses what AWS IoT's shadow service refuses, with AWS's codes (issue 13):
NaN and Infinity (not JSON), documents nested far too deep (400, not a 500 from a RecursionError),
requests over 128 KB (413). What a thing can make the service hold is bounded: named shadows per
thing (AWS documents no number; a local limit, 400) and the records kept in memory."""
import json

from _broker_fixtures import local_broker  # noqa: F401  (fixture)
from host_tools.cloud import shadow_store
from host_tools.cloud.shadow_store import MAX_NAMED_SHADOWS, ShadowStore

REPORT = b'{"state": {"reported": {"v": 1}}}'


def answer(store, payload, op="update", thing="grid-x"):
    if op == "update":
        return store.update(thing, payload)[0]
    return getattr(store, op)(thing, payload)


def test_nan_and_infinity_are_refused_and_never_stored():
    store = ShadowStore()
    for bad in (b'{"state": {"reported": {"v": NaN}}}', b'{"state": {"reported": {"v": Infinity}}}',
                b'{"state": {"desired": {"v": -Infinity}}}'):
        doc = answer(store, bad)
        assert doc["code"] == 400 and doc["message"] == "Invalid JSON", doc
    assert store.snapshot("grid-x") is None
    doc = answer(store, b'{"state": {"reported": {"v": 1.5}}}')
    assert doc["version"] == 1
    got = answer(store, b"", op="get")
    json.loads(json.dumps(got), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_a_very_deep_document_is_a_400_not_a_500():
    store = ShadowStore()
    for depth in (7, 900, 100_000):
        payload = b'{"state": {"reported": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}}"
        doc = answer(store, payload)
        assert doc["code"] in (400, 413), (depth, doc)
        if len(payload) <= 128 * 1024:
            assert doc["code"] == 400 and "nesting" in doc["message"], (depth, doc)
    payload = b'{"state": {"reported": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert answer(store, payload)["code"] == 413


def test_requests_over_128k_are_413():
    store = ShadowStore()
    big = json.dumps({"state": {"desired": {"pad": "x" * (128 * 1024)}}}).encode()
    doc = answer(store, big)
    assert doc["code"] == 413, doc
    deep = b'{"clientToken": "t", "state": {"reported": ' + b"[" * 60_000 + b"]" * 60_000 + b"}}"
    assert answer(store, deep)["code"] == 400


def test_shadow_names_are_at_most_64_characters_as_on_aws():
    store = ShadowStore()
    ok = store.update("grid-x", b'{"state": {"reported": {"v": 1}}}', "n" * 64)[0]
    assert ok["version"] == 1
    doc = store.update("grid-x", b'{"state": {"reported": {"v": 1}}}', "n" * 65)[0]
    assert doc["code"] == 400 and "shadow name" in doc["message"]


def test_a_thing_keeps_at_most_max_named_shadows():
    store = ShadowStore()
    for i in range(MAX_NAMED_SHADOWS):
        assert store.update("grid-x", REPORT, f"n{i}")[0]["version"] == 1
    doc = store.update("grid-x", REPORT, "one-more")[0]
    assert doc["code"] == 400 and "Too many named shadows" in doc["message"], doc
    assert store.snapshot("grid-x", "one-more") is None
    assert store.update("grid-x", REPORT, "n7")[0]["version"] == 2        # the existing ones still work
    assert store.update("grid-x", REPORT)[0]["version"] == 1              # and the classic shadow
    assert store.update("grid-y", REPORT, "n0")[0]["version"] == 1        # and other things


def test_the_limit_holds_across_restarts_and_counts_deleted_shadows(tmp_path, monkeypatch):
    monkeypatch.setattr(shadow_store, "MAX_NAMED_SHADOWS", 3)
    store = ShadowStore(tmp_path)
    for name in ("a", "b", "c"):
        assert store.update("grid-x", REPORT, name)[0]["version"] == 1
    assert store.delete("grid-x", b"", "c")["version"] == 2
    again = ShadowStore(tmp_path)                                         # a restarted service
    assert again.update("grid-x", REPORT, "d")[0]["code"] == 400
    assert again.update("grid-x", REPORT, "c")[0]["version"] == 3        # made again, its version kept
    assert not (tmp_path / "grid-x" / "d.json").exists()


def test_asking_for_shadows_that_do_not_exist_costs_no_memory(tmp_path):
    store = ShadowStore(tmp_path)
    for i in range(5000):
        assert store.get("grid-x", b"", f"ghost{i}")["code"] == 404
        assert store.delete(f"grid-{i}", b"")["code"] == 404
    assert len(store._records) == 0
    assert store.update("grid-x", REPORT, "n1")[0]["version"] == 1


def test_records_held_in_memory_are_bounded_and_the_rest_read_from_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(shadow_store, "MAX_CACHED", 10)
    store = ShadowStore(tmp_path)
    for i in range(50):
        store.update(f"grid-{i}", json.dumps({"state": {"reported": {"i": i}}}).encode())
    assert len(store._records) == 10
    for i in range(50):
        assert store.get(f"grid-{i}")["state"]["reported"] == {"i": i}
    assert store.update("grid-0", REPORT)[0]["version"] == 2
    assert len(store._records) == 10


def test_a_device_is_told_when_it_has_too_many_named_shadows(local_broker, monkeypatch):
    monkeypatch.setattr(shadow_store, "MAX_NAMED_SHADOWS", 2)
    thing = "grid-many"
    base = f"$aws/things/{thing}/shadow/name"
    with local_broker.probe(thing) as dev:
        dev.subscribe(f"{base}/+/update/accepted", f"{base}/+/update/rejected")
        for name in ("a", "b", "c"):
            dev.publish(f"{base}/{name}/update", {"state": {"reported": {"v": 1}}, "clientToken": name})
        got = dev.wait_for(lambda m: m.json().get("clientToken") == "c")
        assert got.topic == f"{base}/c/update/rejected" and got.json()["code"] == 400, got
        assert [m.topic for m in dev.messages if m.topic.endswith("/accepted")] == \
            [f"{base}/a/update/accepted", f"{base}/b/update/accepted"]
