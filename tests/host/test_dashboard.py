"""The dashboard's server over a historian file made here: its JSON API, the plotting library from
the installed plotly package, read-only, loopback unless told otherwise. The page itself is driven
in headless Chromium during a demo (tests/host/test_demo.py)."""
import json
import time
import urllib.error
import urllib.request

import pytest

from host_tools.sim import loadgen
from host_tools.history.dashboard import Dashboard, limits_from_config
from host_tools.errors import EdgeshadowError
from host_tools.history.store import HistoryStore

NOW = time.time()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "h.sqlite"
    t0 = int(NOW) - 2 * 86400
    with HistoryStore(path) as s:
        msgs = [("dt/g-1/telemetry", json.dumps([loadgen.reading(q, t0 + q * 60) for q in range(b, b + 60)]).encode(),
                 NOW - 5) for b in range(0, 48 * 60, 60)]
        msgs.append(("dt/g-1/alerts", json.dumps({"seq": 9999, "ts": NOW - 600, "metric": "voltage", "rule": "range",
                                                  "severity": "critical", "state": "raised", "value": 26000}).encode(), NOW))
        msgs.append(("$aws/things/g-1/shadow/update/documents", json.dumps(
            {"current": {"state": {"reported": {"voltage": 24000.0, "timestamp": int(NOW) - 900, "alerts": [],
                                                "spool": {"backlog": 4, "dropped": 0},
                                                "heap": {"size": 112000, "free": 51000, "min_free": 40000}}},
                         "version": 3}, "timestamp": int(NOW) - 900}).encode(), NOW - 900))
        msgs.append(("dt/g-1/status", b'{"connected":true}', NOW - 3))
        s.ingest(msgs)
    return path


def get(url, **headers):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.status, r.headers, r.read()


def test_fleet_and_device_api(db):
    with Dashboard(db) as d:
        _, _, body = get(d.url + "api/fleet")
        dev = json.loads(body)["devices"]["g-1"]
        assert dev["connected"] and dev["spool"] == {"backlog": 4, "dropped": 0}
        assert dev["heap"] == {"size": 112000, "free": 51000, "min_free": 40000}
        assert [(a["metric"], a["severity"]) for a in dev["alerts"]] == [("voltage", "critical")]  # event after shadow
        assert dev["values"]["voltage"] == loadgen.reading(48 * 60 - 1, 0)["v"]["voltage"]  # newest telemetry
        _, _, body = get(d.url + f"api/device/g-1?since={NOW - 1800}&until={NOW}")
        r = json.loads(body)
        assert r["resolution"] == "raw" and sorted(r["metrics"]) == sorted(loadgen.METRICS)
        assert r["metrics"]["voltage"]["limits"][0] == {"label": "range min", "value": 23000, "severity": "critical"}
        assert r["alerts"][0]["end"] is None and r["alerts"][0]["metric"] == "voltage"
        _, _, body = get(d.url + f"api/device/g-1?since={NOW - 30 * 86400}&until={NOW}")
        month = json.loads(body)["metrics"]["current"]
        assert month["resolution"] == "1h" and len(month["t"]) in (48, 49) and sum(month["n"]) == 48 * 60


def test_the_page_loads_its_library_from_the_installed_package(db):
    with Dashboard(db) as d:
        _, headers, page = get(d.url)
        assert b'src="static/vendor/plotly.min.js"' in page and b"http" not in page.split(b"<body>")[0]
        _, headers, js = get(d.url + "static/vendor/plotly.min.js", **{"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and len(js) > 100_000


def test_read_only_and_unknown_things_answer_with_errors(db):
    with Dashboard(db) as d:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(d.url + "api/fleet", data=b"{}", method="POST"), timeout=10)
        assert e.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as e:
            get(d.url + "api/device/nobody")
        assert e.value.code == 404 and "nothing from 'nobody'" in json.loads(e.value.read())["error"]


def test_beyond_loopback_only_with_a_flag_and_a_token(db):
    with pytest.raises(EdgeshadowError, match="not loopback"):
        Dashboard(db, host="0.0.0.0")
    with pytest.raises(EdgeshadowError, match="needs --token"):
        Dashboard(db, host="0.0.0.0", allow_remote=True)
    with Dashboard(db, token="s3cret") as d:
        with pytest.raises(urllib.error.HTTPError) as e:
            get(d.url.split("?")[0] + "api/fleet")
        assert e.value.code == 401
        assert get(d.url.split("?")[0] + "api/fleet", **{"X-Edgeshadow-Token": "s3cret"})[0] == 200


def test_limits_come_from_the_device_config():
    cfg = {"sku": {"ratings": {"current": 600}},
           "rules": [{"metric": "current", "type": "rating", "max_pct": 90, "severity": "critical"},
                     {"metric": "voltage", "type": "range", "min": 1, "severity": "warning"},
                     {"metric": "current", "type": "zscore", "threshold": 4}]}
    assert limits_from_config(cfg) == {
        "current": [{"label": "rating 90%", "value": 540.0, "severity": "critical"}],
        "voltage": [{"label": "range min", "value": 1, "severity": "warning"}]}
