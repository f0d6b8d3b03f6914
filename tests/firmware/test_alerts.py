from edge.alerts import Alert


def run(a, hits):
    out = []
    for i, h in enumerate(hits):
        ev = a.update(h, i, i, lambda v: "r%d" % v)
        out.append((a.state, ev["state"] if ev else None))
    return out


def test_raise_active_clear_events():
    a = Alert("voltage", "range", "critical")
    assert run(a, [False, True, True, False, False]) == [
        (None, None), ("raised", "raised"), ("active", None), ("cleared", "cleared"), (None, None)]


def test_debounce_and_clear_after():
    a = Alert("voltage", "range", "warning", debounce=2, clear_after=3)
    states = [s for s, _ in run(a, [True, False, True, True, True, False, False, True, False, False, False])]
    assert states == [None, None, None, "raised", "active", "active", "active", "active", "active", "active",
                      "cleared"]


def test_no_opinion_changes_nothing():
    a = Alert("current", "zscore", "info")
    assert run(a, [None, True, None, None, False]) == [
        (None, None), ("raised", "raised"), ("active", None), ("active", None), ("cleared", "cleared")]


def test_record_and_event_contents():
    a = Alert("current", "rating", "critical")
    ev = a.update(True, 900, 1700000000, lambda v: "too high")
    assert ev == {"metric": "current", "rule": "rating", "severity": "critical", "state": "raised",
                  "value": 900, "since": 1700000000, "reason": "too high"}
    a.update(True, 950, 1700000010)
    assert ev["state"] == "raised" and ev["value"] == 900   # an event is a copy, not the live record
    assert a.record["value"] == 950 and a.record["since"] == 1700000000
