# The supervisor above net.mqtt: owns reconnection (Wi-Fi, then clock, then MQTT) with exponential
# backoff and full jitter, resubscribes after every connect, routes messages to handlers and runs
# on-connect hooks (the shadow GET). The MQTT client re-sends its unacknowledged QoS1 itself.
import asyncio
import gc

from compat import unload, uptime
from net.backoff import Backoff


def _now():
    return uptime.ms() / 1000


def _explain(e, host):
    # net.tls only while it is used: a name bound to it in run() would keep it in RAM for good
    from net import tls
    try:
        return tls.explain(e, host)
    finally:
        unload("net.tls", "net.clock")


def topic_matches(filt, topic):
    if filt == topic:
        return True
    f = filt.split("/")
    t = topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class Connection:
    def __init__(self, client, wifi=None, backoff=None, ntp_host=None, log=print):
        self.client = client
        self.wifi = wifi                  # async fn() that brings Wi-Fi up or raises OSError
        self.backoff = backoff or Backoff()
        self.ntp_host = ntp_host
        self.log = log
        self.subs = []                    # [(filter, qos, handler)] in subscription order
        self.hooks = []                   # async fn() run after each connect
        self.connects = 0
        self.last_error = None
        self._clock_set = False
        self._changed = asyncio.Event()
        client.on_message = self._route

    @property
    def up(self):
        return self.client.connected

    def subscribe(self, filt, handler, qos=1):
        """Register a subscription (kept across reconnects); handler(topic, payload, retain)."""
        self.subs.append((filt, qos, handler))
        if self.up:
            asyncio.create_task(self._subscribe_now(filt, qos))

    async def _subscribe_now(self, filt, qos):
        try:
            await self.client.subscribe(filt, qos)
        except Exception as e:
            self.log("net: subscribe %s failed: %s" % (filt, e))

    def on_connect(self, hook):
        self.hooks.append(hook)

    def _route(self, topic, payload, retain):
        for filt, _, handler in self.subs:
            if topic_matches(filt, topic):
                handler(topic, payload, retain)

    def _notify(self):
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def wait_up(self, timeout=None):
        async def wait():
            while not self.up:
                await self._changed.wait()
        if timeout is None:
            await wait()
        else:
            await asyncio.wait_for(wait(), timeout)

    async def connect_once(self):
        """One attempt: Wi-Fi, clock, MQTT, subscriptions, hooks. Raises on failure."""
        c = self.client
        if self.wifi is not None:
            await self.wifi()
        if not self._clock_set:
            from net import clock  # in RAM only while the clock is set, once a boot
            clock.set_clock(self.ntp_host)  # certificate dates need the time
            del clock  # (a name bound to it would keep it through the handshake)
            unload("net.clock")
            self._clock_set = True
        gc.collect()  # the handshake peak needs the heap it can get
        await c.connect()
        for filt, qos, _ in self.subs:
            await c.subscribe(filt, qos)  # refused (0x80) raises: a policy problem is loud
        for hook in self.hooks:
            await hook()

    async def run(self):
        """Keep the link up, for good; never raises."""
        host = self.client.server_hostname or self.client.server
        while True:
            try:
                await self.connect_once()
            except Exception as e:
                self.last_error = _explain(e, host)
                self.log("net: connect to %s:%d failed: %s" % (host, self.client.port, self.last_error))
                if self.client.connected:
                    await self.client.disconnect()
                await asyncio.sleep(self.backoff.delay())
                continue
            self.connects += 1
            self.last_error = None
            self.backoff.connected(_now())
            self.log("net: connected to %s:%d (connect #%d, %d unacknowledged re-sent)"
                     % (host, self.client.port, self.connects, len(self.client.inflight)))
            self._notify()
            err = await self.client.wait_down()
            self.backoff.disconnected(_now())
            self._notify()
            self.last_error = str(err)
            self.log("net: link down: %s" % err)
            await asyncio.sleep(self.backoff.delay())
