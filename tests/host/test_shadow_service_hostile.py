"""The local shadow store refuses what AWS IoT's shadow service refuses, with AWS's codes (issue 13):
NaN and Infinity (not JSON), documents nested far too deep (400, not a 500 from a RecursionError),
requests over 128 KB (413)."""
import json

from host_tools.cloud.shadow_store import ShadowStore


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
