"""The live web dashboard: the historian's file served as a page on 127.0.0.1, read-only.

`Dashboard(db_path, ...)` is a small threaded HTTP server (standard library): the page and its
script from host_tools/history/dashboard/static/, the plotting library from the installed plotly wheel
(no CDN: the page works with no internet), and a JSON API the page polls for live updates:

  GET /api/fleet                      the fleet at a glance (host_tools.history.query.fleet_snapshot)
  GET /api/device/<thing>?since=&until=   every metric's series at the resolution the window
                                      needs (raw, 1 min, 1 h), its range/rating limits and the
                                      alert spans in the window

Only GET and HEAD are answered. Binding to anything but loopback needs `allow_remote=True` and a
token; with a token every request must carry it (`?token=` or the X-Edgeshadow-Token header).
"""
import gzip
import hmac
import ipaddress
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from host_tools import DATA_DIR

from host_tools.history import query as history
from host_tools.errors import EdgeshadowError
from host_tools.history.store import HistoryStore

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_CONFIG = DATA_DIR / "configs" / "grid-sensor-sim.json"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def plotly_js():
    """The plotting library as the plotly wheel ships it (plotly/package_data/plotly.min.js)."""
    import importlib.resources
    try:
        return importlib.resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    except (ImportError, OSError) as e:
        raise EdgeshadowError(f"the plotly package is not installed ({e})", hint="run `make setup`")


def limits_from_config(cfg):
    """metric -> [{"label", "value", "severity"}]: the range rules' min/max and the rating rules'
    share of the SKU's rating, as the firmware's rules (edge/rules.py) apply them."""
    ratings = (cfg.get("sku") or {}).get("ratings") or {}
    out = {}
    for r in cfg.get("rules") or ():
        m, kind = r.get("metric"), r.get("type")
        lines = out.setdefault(m, [])
        if kind == "range":
            for k in ("min", "max"):
                if isinstance(r.get(k), (int, float)):
                    lines.append({"label": f"range {k}", "value": r[k], "severity": r.get("severity")})
        elif kind == "rating" and isinstance(ratings.get(m), (int, float)):
            pct = r.get("max_pct", 100)
            lines.append({"label": f"rating {pct}%", "value": ratings[m] * pct / 100.0,
                          "severity": r.get("severity")})
    return {m: v for m, v in out.items() if v}


def load_limits(config_path):
    path = Path(config_path)
    try:
        return limits_from_config(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise EdgeshadowError(f"device config {path}: {e}")


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    server_version = "edgeshadow-dashboard"
    dashboard = None  # set on a subclass per server

    def log_message(self, fmt, *args):  # quiet: a polling page would fill the terminal
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def _refuse(self):
        self._send(405, b'{"error": "the dashboard is read-only"}\n', "application/json")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def do_GET(self, head=False):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        d = self.dashboard
        if d.token:
            given = query.get("token") or self.headers.get("X-Edgeshadow-Token") or ""
            if not hmac.compare_digest(given.encode(), d.token.encode()):
                return self._send(401, b'{"error": "a token is required"}\n', "application/json")
        try:
            status, body, ctype = d.route(url.path, query)
        except EdgeshadowError as e:
            status, body, ctype = 404, json.dumps({"error": str(e)}).encode(), "application/json"
        except ValueError as e:
            status, body, ctype = 400, json.dumps({"error": str(e)}).encode(), "application/json"
        self._send(status, body, ctype, head=head)

    def _send(self, status, body, ctype, head=False):
        gz = isinstance(body, tuple)  # (plain, gzipped) for big static files
        if gz:
            plain, packed = body
            gz = "gzip" in self.headers.get("Accept-Encoding", "")
            body = packed if gz else plain
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if ctype == "application/json" else "max-age=3600")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if not head:
            self.wfile.write(body)


class Dashboard:
    """Use as a context manager; `.url` is the address to open."""

    def __init__(self, db_path, host="127.0.0.1", port=0, token=None, allow_remote=False,
                 config=DEFAULT_CONFIG, stale_after_s=120.0):
        if not is_loopback(host):
            if not allow_remote:
                raise EdgeshadowError(f"--host {host} is not loopback: the dashboard would be reachable "
                                      "from the network", hint="add --allow-remote and --token to mean it")
            if not token:
                raise EdgeshadowError(f"--host {host}: a dashboard reachable from the network needs --token")
        self.db_path = Path(db_path)
        self.host, self.port, self.token = host, port, token
        self.limits = load_limits(config) if config else {}
        self.stale_after_s = stale_after_s
        self._static = {}
        self._store, self._lock = None, threading.Lock()
        self.httpd = self._thread = None

    # -- routes --------------------------------------------------------------------------------
    def route(self, path, query):
        if path in ("/", "/index.html"):
            return 200, self.static("index.html"), TYPES[".html"]
        if path == "/static/vendor/plotly.min.js":
            return 200, self.static_packed("plotly.min.js", plotly_js), TYPES[".js"]
        if path.startswith("/static/") and "/" not in path[len("/static/"):]:
            name = path[len("/static/"):]
            if (STATIC / name).is_file():
                return 200, self.static(name), TYPES.get(Path(name).suffix, "application/octet-stream")
        if path == "/api/fleet":
            return 200, self._json(self.fleet()), "application/json"
        if path.startswith("/api/device/"):
            thing = urllib.parse.unquote(path[len("/api/device/"):])
            now = time.time()
            until = float(query.get("until") or now)
            since = float(query.get("since") or until - 3600)
            if not since < until:
                raise ValueError("since must be before until")
            return 200, self._json(self.device(thing, since, until, query.get("resolution", "auto"))), \
                "application/json"
        return 404, b'{"error": "not found"}\n', "application/json"

    def static(self, name):
        if name not in self._static:
            self._static[name] = (STATIC / name).read_bytes()
        return self._static[name]

    def static_packed(self, name, load):
        if name not in self._static:
            plain = load()
            self._static[name] = (plain, gzip.compress(plain, 6))
        return self._static[name]

    def _json(self, obj):
        return (json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n").encode()

    def store(self):
        """The one read-only connection (opened once the historian's file exists); hold _lock."""
        if self._store is None:
            self._store = HistoryStore(self.db_path, readonly=True)
        return self._store

    def fleet(self):
        if not self.db_path.exists():
            return {"now": time.time(), "devices": {}, "waiting": f"no data yet in {self.db_path}"}
        with self._lock:
            snap = history.fleet_snapshot(self.store(), stale_after_s=self.stale_after_s)
        snap["now"] = time.time()
        return snap

    def device(self, thing, since, until, resolution="auto"):
        with self._lock:
            return self._device(self.store(), thing, since, until, resolution)

    def _device(self, store, thing, since, until, resolution):
        res = history.pick_resolution(since, until) if resolution == "auto" else resolution
        metrics = {}
        for m in history.metrics_of(store, thing):
            s = history.series(store, thing, m, since, until, res)
            s["limits"] = self.limits.get(m, [])
            metrics[m] = s
        return {"thing": thing, "since": since, "until": until, "resolution": res, "metrics": metrics,
                "alerts": history.alert_spans(store, thing, since, until)}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self):
        handler = type("DashboardHandler", (Handler,), {"dashboard": self})
        try:
            self.httpd = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as e:
            raise EdgeshadowError(f"cannot serve the dashboard on {self.host}:{self.port}: {e}")
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dashboard", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={urllib.parse.quote(self.token)}" if self.token else "")

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(5)
            self.httpd = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
