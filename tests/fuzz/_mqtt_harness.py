# A hostile broker for net.mqtt: after a CONNACK it sends one fuzz case's bytes, then hangs up. The
# client's routing goes to the shadow client (deltas to edge.delta.apply_delta on the grid config),
# as on a board. Runs on CPython (imported by the fuzz tests) and on MicroPython (a batch of cases
# from a file: `micropython _mqtt_harness.py CASES OUT`, one hex case a line).
# A case is fine when the client ends up up or down with a protocol-level reason (MQTTError,
# OSError, EOFError, ValueError); a bug is any other exception, a handler that raised, or a hang.
import asyncio
import json
import sys

from net import mqtt as _mqtt
from net.mqtt import MQTTClient, MQTTError
from net.shadow_client import ShadowClient
from edge import delta as _delta_mod
from edge.config import load

THING = "fuzz-001"
CFG = load({"thing": THING, "metrics": {"voltage": {"unit": "V"}, "current": {"unit": "A"}},
            "rules": [{"metric": "voltage", "type": "range", "min": 1, "max": 2}]})
FINE = (MQTTError, OSError, EOFError, ValueError)
_problems = []


def _print(*a):
    _problems.append(" ".join(str(x) for x in a))


_mqtt.print = _print  # a handler that raised is reported by net.mqtt with print(): catch it


class Stream:
    def __init__(self, data):
        self.data = b"\x20\x02\x00\x00" + data
        self.closed = False

    async def readexactly(self, n):
        if len(self.data) < n or self.closed:
            raise EOFError("hang up")
        b, self.data = self.data[:n], self.data[n:]
        await asyncio.sleep(0)
        return b

    def write(self, b):
        if self.closed:
            raise OSError(32, "closed")

    async def drain(self):
        pass

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


class _Conn:
    """The part of net.connection the shadow client uses."""

    def __init__(self, client):
        self.client = client

    def subscribe(self, filt, handler, qos=1):
        self.handler = handler

    def on_connect(self, hook):
        pass


async def run_one(data):
    """None if the client took the case in stride, else a description of the bug."""
    del _problems[:]
    s = Stream(data)

    async def opener(*a):
        return s, s
    c = MQTTClient(THING, "broker", 8883, opener=opener, timeout=1, keepalive=0)
    conn = _Conn(c)
    sc = ShadowClient(conn, THING, _delta, timeout=0.05, log=_log)
    base = sc.base
    c.on_message = lambda t, p, r: sc._on_message(t, p, r) if t.startswith(base) else None
    try:
        await c.connect()
    except FINE:
        return _bug_of_problems()
    except Exception as e:
        return "connect raised %r" % (e,)
    try:
        await asyncio.wait_for(c.wait_down(), 1)
    except asyncio.TimeoutError:
        await c.disconnect()
        return "hang: the client neither read on nor went down"
    if c.error is not None and not isinstance(c.error, FINE):
        return "link went down with %r" % (c.error,)
    await asyncio.sleep(0)
    return _bug_of_problems()


def _bug_of_problems():
    return "; ".join(_problems) or None


def _log(msg):
    if "handler failed" in msg:  # on_delta raised: a bug; a GET or report that failed is expected
        _print(msg)


def _delta(state, version):
    new, problems = _delta_mod.apply_delta(CFG, {"state": state, "version": version})
    if new is not None:
        from edge.pipeline import Device
        r = Device(new).process(1700000000, {"voltage": 1.5, "current": 3.0})
        for v in r["values"].values():
            if v is not None and not (-1e12 <= v <= 1e12):
                raise ValueError("a delta that validated gave the value %r" % v)
    return None  # nothing reported back


def run(data):
    return asyncio.run(run_one(data))


def main(argv):
    import binascii
    bugs = 0
    n = 0
    with open(argv[1]) as f, open(argv[2], "w") as out:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                bug = run(binascii.unhexlify(line))
            except Exception as e:
                bug = "harness: %r" % (e,)
            if bug:
                bugs += 1
                out.write(json.dumps({"case": n, "hex": line, "bug": bug}) + "\n")
            n += 1
    print("cases %d bugs %d" % (n, bugs))


if __name__ == "__main__" and sys.argv[1:]:
    main(sys.argv)
