"""Live fleet view: what every device last reported, heard on the broker (local Mosquitto or AWS).

`Subscriber` is the paho-mqtt side: one TLS connection, subscribed to the shadow documents,
telemetry and alerts of every thing, feeding a `Fleet` (host_tools/cloud/fleet.py: the pure model,
which says which messages are understood). `watch_once` waits for the fleet to be heard and
returns one snapshot; `watch_live` redraws a rich table as messages arrive.
"""
import json
import ssl
import threading
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError
from host_tools.cloud.fleet import Fleet, topics
from host_tools.cloud.monitor_view import CompactView, render_wide

# ---------------------------------------------------------------- connection settings

class BrokerSettings:
    def __init__(self, host, port, ca=None, cert=None, key=None, client_id=None, tls=True,
                 server_hostname=None):
        self.host, self.port = host, int(port)
        self.ca, self.cert, self.key = ca, cert, key
        self.client_id = client_id or f"edgeshadow-monitor-{int(time.time() * 1000) % 10**8}"
        self.tls = tls
        self.server_hostname = server_hostname

    def describe(self):
        return f"{self.host}:{self.port}" + (" (TLS)" if self.tls else "")


def _need_file(path, what):
    if path is None:
        raise EdgeshadowError(f"no {what} given")
    p = Path(path)
    if not p.is_file():
        raise EdgeshadowError(f"{what} {p} does not exist")
    return str(p)


def local_settings(state_file=None, host=None, port=None, ca=None, cert=None, key=None):
    """Settings for the local broker: its state file (broker.json) overlaid by explicit flags."""
    info = {}
    if state_file is not None:
        path = Path(state_file)
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            raise EdgeshadowError(f"no broker state file at {path}",
                                  hint="start the local broker (`edgeshadow demo` or `edgeshadow broker`) "
                                       "or pass --host/--port/--ca/--cert/--key")
        except ValueError as e:
            raise EdgeshadowError(f"{path}: not valid JSON ({e})")
        if not isinstance(info, dict):
            raise EdgeshadowError(f"{path}: must hold a JSON object")
        if host is None and port is None:
            from host_tools.cloud.broker import check_running
            check_running(info, path)
    host = host or info.get("host") or "127.0.0.1"
    port = port or info.get("port")
    if port is None:
        raise EdgeshadowError("the local broker's port is unknown",
                              hint="give --port or --broker-state pointing at broker.json")
    # broker.json (host_tools/cloud/broker.py write_state) holds the monitor's own client certificate
    ca = ca or info.get("ca")
    cert = cert or info.get("monitor_cert")
    key = key or info.get("monitor_key")
    tls = ca is not None
    if tls:
        _need_file(ca, "broker CA certificate")
        if (cert is None) != (key is None):
            raise EdgeshadowError("give both a client certificate and its key, or neither")
        if cert:
            _need_file(cert, "client certificate")
            _need_file(key, "client key")
    return BrokerSettings(host, port, ca, cert, key, tls=tls)


def aws_settings(endpoint, cert, key, ca, port=8883, client_id=None):
    if not endpoint:
        raise EdgeshadowError("--aws needs --endpoint (the account's ATS data endpoint)",
                              hint="aws iot describe-endpoint --endpoint-type iot:Data-ATS")
    return BrokerSettings(endpoint, port, _need_file(ca, "root CA (--ca)"),
                          _need_file(cert, "client certificate (--cert)"),
                          _need_file(key, "client key (--key)"), client_id=client_id)


# ---------------------------------------------------------------- subscriber (paho-mqtt)

class Subscriber:
    """One paho-mqtt connection feeding a Fleet. Use as a context manager."""

    def __init__(self, settings, fleet, aws=False, connect_timeout_s=10.0):
        import paho.mqtt.client as mqtt
        self.settings, self.fleet = settings, fleet
        self.connect_timeout_s = connect_timeout_s
        self.connected = threading.Event()
        self.failure = None
        self.topic_list = topics(fleet.prefix)
        if aws:
            self.topic_list.append("$aws/events/presence/+/+")
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=settings.client_id, protocol=mqtt.MQTTv311)
        if settings.tls:
            ctx = ssl.create_default_context(cafile=settings.ca)
            if settings.cert:
                ctx.load_cert_chain(settings.cert, settings.key)
            self.client.tls_set_context(ctx)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.failure = f"the broker refused the connection: {reason_code}"
            self.connected.set()
            return
        client.subscribe([(t, 0) for t in self.topic_list])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            self.failure = f"the broker refused the subscriptions: {bad[0]}"
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.fleet.handle(msg.topic, msg.payload)

    def __enter__(self):
        s = self.settings
        try:
            self.client.connect(s.host, s.port, keepalive=30)
        except (OSError, ssl.SSLError) as e:
            raise EdgeshadowError(f"cannot connect to the broker at {s.describe()}: {e}")
        self.client.loop_start()
        if not self.connected.wait(self.connect_timeout_s):
            self.close()
            raise EdgeshadowError(f"no answer from the broker at {s.describe()} within "
                                  f"{self.connect_timeout_s:g} s")
        if self.failure:
            self.close()
            raise EdgeshadowError(f"{s.describe()}: {self.failure}")
        return self

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __exit__(self, *exc):
        self.close()


def wait_heard(fleet, seconds, expect=None, settle_s=2.0, clock=time.monotonic):
    """Wait until `expect` devices have reported values, or (without `expect`) until at least one
    has and no new device or value appeared for `settle_s`; never longer than `seconds`."""
    deadline = clock() + seconds
    last_shape, stable_since = None, clock()
    while True:
        now = clock()
        with fleet.lock:
            with_values = sorted(t for t, d in fleet.devices.items() if d.values)
            shape = tuple((t, tuple(sorted(fleet.devices[t].values))) for t in with_values)
        if expect is not None and len(with_values) >= expect:
            return True
        if shape != last_shape:
            last_shape, stable_since = shape, now
        elif expect is None and with_values and now - stable_since >= settle_s:
            return True
        if now >= deadline:
            return False
        fleet.changed.wait(min(0.2, max(0.0, deadline - now)))
        fleet.changed.clear()


def watch_once(settings, seconds=30.0, expect=None, settle_s=2.0, aws=False, fleet=None):
    """Connect, wait for the fleet to be heard, return (snapshot, complete)."""
    fleet = fleet or Fleet()
    with Subscriber(settings, fleet, aws=aws):
        complete = wait_heard(fleet, seconds, expect=expect, settle_s=settle_s)
    return fleet.snapshot(), complete


# ---------------------------------------------------------------- views (monitor_view.py)

def render(snapshot, source="", wide=True, view=None):
    """The snapshot drawn: the detailed table (wide), or `view`'s compact lines (CompactView)."""
    if wide:
        return render_wide(snapshot, source)
    return (view or CompactView()).render(snapshot, source)


def watch_live(settings, seconds=None, aws=False, console=None, fleet=None, until=None,
               min_redraw_s=0.5, wide=False):
    """Redraw the table as messages arrive (at most every `min_redraw_s`, and every second for
    the last-seen ages) until Ctrl-C, `seconds` pass or `until(fleet)` holds. A table of 100
    devices takes about 0.2 s to draw, so redraws follow messages, not a fixed rate. By default
    one line per device in the terminal's size (80x24 at least), columns kept between redraws;
    `wide`: the detailed table."""
    from rich.console import Console
    from rich.live import Live
    fleet = fleet or Fleet()
    console = console or Console()
    view = CompactView(max(40, console.width), max(10, console.height))
    deadline = None if seconds is None else time.monotonic() + seconds
    with Subscriber(settings, fleet, aws=aws):
        with Live(render(fleet.snapshot(), settings.describe(), wide, view), console=console,
                  auto_refresh=False, transient=False) as live:
            drawn = time.monotonic()
            while deadline is None or time.monotonic() < deadline:
                left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                pause = drawn + min_redraw_s - time.monotonic()
                if pause > 0:
                    time.sleep(min(pause, left))
                fleet.changed.wait(min(1.0, left))
                fleet.changed.clear()
                live.update(render(fleet.snapshot(), settings.describe(), wide, view), refresh=True)
                drawn = time.monotonic()
                if until is not None and until(fleet):
                    break
    return fleet.snapshot()
