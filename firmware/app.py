# The supervisor: composes the layers (board -> pipeline -> spool -> MQTT -> shadow) as asyncio
# tasks. sampler reads, calibrates and detects at the configured interval and never waits on the
# network; alert raises and clears go to the spool at once and wake the forwarder; the forwarder
# sends the spool's backlog in order; the shadow task reports state on change (with a heartbeat)
# and applies deltas; the watchdog is fed only while the sampler keeps its schedule.
import gc
import json
import sys

import asyncio

from edge import shadow as _shadow
from edge.pipeline import Device
from edge.calibration import build_report_filter
from store import write_atomic
from store.spool import Spool, KIND_READING, KIND_ALERT

from compat import ticks_ms, ticks_diff, unix_time, unload, uptime

CONFIG_PATH = "/config.json"
BOARD_PATH = "/board.json"
HEARTBEAT_S = 300           # the shadow is reported at least this often, changed or not
# Unacknowledged QoS1 packets are kept for re-sending until their PUBACK: at most this many (two
# 5 KB telemetry batches, or a batch and an alert) in the board's RAM at once.
_MAX_INFLIGHT = 2
# The config checks: imported at boot and per delta, unloaded after (code on a board is in RAM).
_CHECKS = ("edge.delta", "edge.config", "edge.checks", "edge.model_checks", "edge.schema", "edge.text")
ROLLBACK_AFTER = 3          # failed connects, none this boot, before a delta's settings roll back


def log(*args):
    print("[%d]" % unix_time(), *args)


def _dumps(obj):
    return json.dumps(obj).encode()


class App:
    def __init__(self, cfg, board_def, board=None, now=unix_time):
        self.cfg = cfg
        self.now = now
        self.device = Device(cfg, validated=True)
        if board is None:
            from board import Board, bump_boot_count
            board = Board(board_def, cfg, boot_count=bump_boot_count())
        self.board = board
        for p in getattr(board, "problems", ()):
            log("board:", p)
        sp = cfg["spool"]
        self.spool = Spool(sp["dir"], sp["max_bytes"])
        if self.spool.torn:
            log("spool: %d torn record(s) skipped after a restart" % self.spool.torn)
        if self.spool.meta_problem:
            log("spool: meta.json not used (%s): head taken from the segments" % self.spool.meta_problem)
        if self.spool.strays:
            log("spool: ignored, not the spool's: %s" % ", ".join(self.spool.strays))
        self._filters()
        self.result = None
        self.config_error = None
        self.last_sample_ms = ticks_ms()
        self.samples = 0
        self._report = asyncio.Event()
        self._reported_ts = None
        self._units_due = True   # units go in the first report after a (re)connect or a config change
        self.forwarder = self.conn = self.shadow = self.jobs = None
        self._net_cfg = None       # the settings the link was built with (deltas apply at boot)
        self._rb_trial = False     # those settings came from a delta and never connected yet
        self._rb_refused = None    # connection settings rolled back before (refused again)
        self._rb_synced = False    # the first connect of this boot was recorded
        self._unreportable = None  # the delta whose echo the service refused (not applied again)
        self._restored = None      # settings a rollback put back, to report once
        self.min_free = self.heap_free()

    def heap_free(self):
        """Free GC heap after a collection (None on CPython); keeps the low mark since boot
        (heap.min_free): what the firmware holds at its fullest sampled moment."""
        if not hasattr(gc, "mem_free"):
            return None
        gc.collect()  # a few ms on an ESP32, once an interval: also keeps fragmentation down
        free = gc.mem_free()
        if free < getattr(self, "min_free", free + 1):
            self.min_free = free
        return free

    def _filters(self):
        self.filters = {m: build_report_filter(mc.get("report"))
                        for m, mc in self.cfg["metrics"].items()}

    # --- sampling (never waits on the network) -------------------------------------------------
    def sample(self):
        t0 = ticks_ms()
        uptime.ms()  # at least every 2^29 ms keeps uptime right past the tick period
        raw, status = self.board.read_all()
        ts = self.now()
        r = self.device.process(ts, raw, status)
        reading = {"ts": ts, "v": r["values"]}
        bad = {m: s for m, s in r["status"].items() if s != "ok"}
        if bad:
            reading["s"] = bad
        self.spool.append(KIND_READING, _dumps(reading))
        for e in r["events"]:
            self._spool_alert(e, ts)
        if self.forwarder is not None and not r["events"]:
            self.forwarder.kick()
        self.result = r
        if r["events"] or self._values_changed(r, ts):
            self._report.set()
        self.samples += 1
        self.heap_free()
        self.last_sample_ms = ticks_ms()
        return ticks_diff(self.last_sample_ms, t0)

    def _spool_alert(self, e, ts):
        e["thing"] = self.cfg["thing"]
        e["ts"] = ts
        self.spool.append(KIND_ALERT, _dumps(e))
        log("alert %s: %s %s %s" % (e["state"], e["metric"], e["rule"], e.get("reason", "")))
        if self.forwarder is not None:
            self.forwarder.kick(urgent=True)

    def _values_changed(self, r, ts):
        changed = self._reported_ts is None or ts - self._reported_ts >= HEARTBEAT_S
        for m, f in self.filters.items():
            if f.should_report(r["values"].get(m), ts):
                changed = True
        return changed

    async def sampler(self):
        next_ms = ticks_ms()
        while True:
            interval_ms = int(self.cfg["interval_s"] * 1000)
            try:
                busy = self.sample()
                self.board.set_loop_utilisation(busy, interval_ms)
            except Exception as e:  # a bug in one sample must not stop the loop
                log("sampler: error:", repr(e))
                sys.print_exception(e) if hasattr(sys, "print_exception") else None
            next_ms += interval_ms
            wait = ticks_diff(next_ms, ticks_ms())
            if wait < 0:  # fell behind (e.g. a long burst): start again from now, no catch-up burst
                next_ms = ticks_ms()
                wait = 0
            await asyncio.sleep(wait / 1000)

    # --- shadow ---------------------------------------------------------------------------------
    def reported(self):
        free = self.heap_free()
        extra = {"spool": {"backlog": self.spool.backlog, "dropped": self.spool.dropped}}
        if self.spool.strays:
            extra["spool"]["strays"] = len(self.spool.strays)
        if free is not None:  # bytes; min_free is the low mark since boot
            from board import heap_reserved
            extra["heap"] = {"size": free + gc.mem_alloc() - heap_reserved(), "free": free,
                             "min_free": self.min_free}
        prov = {m: mc["provenance"] for m, mc in self.cfg["metrics"].items() if mc.get("provenance")}
        if prov:
            extra["provenance"] = prov
        if self._units_due:  # AWS keeps them in the shadow: no need to send them every time
            extra["units"] = {m: mc["unit"] for m, mc in self.cfg["metrics"].items() if mc.get("unit")}
        rep = _shadow.reported_state(self.cfg, self.result, extra)
        rep["interval_s"] = self.cfg["interval_s"]
        rep["config_error"] = self.config_error
        rep, dropped = _shadow.trim(rep)
        if dropped:
            log("shadow: %d optional field(s) dropped to stay within AWS's limits" % dropped)
        return rep

    async def reporter(self):
        while True:
            await self._report.wait()
            self._report = asyncio.Event()
            if self.result is None or self.conn is None or not self.conn.up:
                continue  # reported again on the next change or heartbeat once the link is up
            restored = None
            try:
                rep = self.reported()
                restored, self._restored = self._restored, None
                if restored:  # after a rollback: the settings in force, then GET the delta again
                    rep.update(restored)
                await self.shadow.report(rep)
                self._reported_ts = self.result["ts"]
                if "units" in rep:
                    self._units_due = False
                if restored:
                    await self.shadow.get()
                if self.jobs is not None:
                    self.jobs.reported()  # OTA: started, connected, reported: confirm a trial slot
            except Exception as e:
                self._restored = self._restored or restored  # again with the next report
                log("shadow: report failed:", e)

    def on_delta(self, state, version):
        """Apply a desired-state delta as a whole or not at all; what we return is reported.
        The code for it (app_delta, and the config checks it imports) is in RAM only meanwhile."""
        import app_delta
        try:
            return app_delta.apply(self, state, version)
        finally:
            del app_delta
            unload("app_delta", *_CHECKS)

    def refuse(self, version, problems):
        """The shadow version refused, with its problems: kept as config_error (reported until a
        delta applies) and returned as the state to report now."""
        self.config_error = {"version": version, "problems": problems}
        return {"config_error": self.config_error, "config_version": self.cfg.get("version", 0)}

    def on_rejected(self, reported, err):
        """The service refused the report of an applied delta (too large, ...): say so instead."""
        self._unreportable = dict((k, v) for k, v in reported.items()
                                  if k not in ("config_version", "config_error"))
        return self.refuse(self.cfg.get("version", 0),
                           ["report: the shadow service refused the applied state: %s" % err])

    def on_too_large(self, version, n):
        """A delta too large for the heap to read in: refused, with the reason, in the shadow."""
        return self.refuse(version, ["shadow: the delta of version %d is %d bytes with its metadata, more "
                                     "than this board's heap can take in; make the desired state smaller"
                                     % (version, n)])

    # --- network --------------------------------------------------------------------------------
    def start_network(self):
        m = self.cfg["mqtt"]
        if not m.get("endpoint"):
            log("net: no mqtt.endpoint in the config: sampling and spooling only")
            return []
        # the MQTT receive buffer first (the largest long-lived block: 2 KB), then the network code,
        # TLS set-up (in RAM only while it is used) after: the other order leaves the heap too
        # fragmented for the network code at 116 KB, and for the buffer at 80 KB (measured)
        from net.mqtt import MQTTClient, RX_BUF
        rx_buf = bytearray(RX_BUF)
        from net.connection import Connection
        from net.forwarder import Forwarder
        from net.shadow_client import ShadowClient
        self._net_cfg = self.cfg
        err, self._restored, self._rb_trial, self._rb_refused = self._rollback("at_boot", self.cfg)
        self.config_error = err or self.config_error
        thing = self.cfg["thing"]
        prefix = "%s/%s/" % (m["telemetry_prefix"], thing)
        self.status_topic = prefix + "status"
        from net import tls
        ctx = tls.load_context(m["ca"], m["cert"], m["key"])
        del tls
        unload("net.tls")
        # the broker tells the fleet when the link dies: a retained "connected": false as last will
        client = MQTTClient(thing, m["endpoint"], m["port"], ssl_context=ctx,
                            server_hostname=m["endpoint"], keepalive=m["keepalive_s"],
                            clean_session=m["clean_session"], max_inflight=_MAX_INFLIGHT, rx_buf=rx_buf,
                            will=(self.status_topic, b'{"connected":false}', 1, True))
        from board import join_wifi
        self.conn = Connection(client, wifi=lambda: join_wifi(self.cfg["wifi"], log),
                               ntp_host=self.cfg["ntp"]["host"], log=log)
        self.forwarder = Forwarder(self.spool, self.conn, prefix + "telemetry", prefix + "alerts",
                                   batch_max=m["batch_max"], log=log)
        self.shadow = ShadowClient(self.conn, thing, self.on_delta, log=log, on_rejected=self.on_rejected,
                                   on_too_large=self.on_too_large)
        self.conn.on_connect(self._on_connect)
        tasks = [self.conn.run(), self.forwarder.run(), self.reporter(), self._rollback_guard()]
        try:  # over-the-air updates (AWS IoT Jobs) only on a board that holds the key to check them
            import os
            os.stat("/certs/ota.pub")
        except OSError:
            return tasks
        from ota.jobs import Jobs
        self.jobs = Jobs(self.conn, thing, log=log)
        return tasks + [self.jobs.run()]

    async def _rollback_guard(self):
        # settings a delta set that do not connect at all this boot go back to the last that did
        while self._rb_trial and not self.conn.connects:
            if self.conn.backoff.attempts >= ROLLBACK_AFTER:
                new, problems = self._rollback("roll_back", self.cfg)
                write_atomic(CONFIG_PATH, new)
                log("net: %s" % "; ".join(problems))
                self.spool.flush()
                self.restart()
                return
            await asyncio.sleep(1)

    def _rollback(self, op, *args):
        """One call of net.rollback.Rollback; the module is dropped again after it (needed at boot,
        on the first connect and for connection deltas only: about 2 KB of heap back)."""
        from net.rollback import Rollback
        try:
            return getattr(Rollback(), op)(*args)
        finally:
            unload("net.rollback")

    def restart(self):
        try:
            import machine
            machine.reset()
        except (ImportError, AttributeError):
            log("restart: not available here")

    async def _on_connect(self):
        if not self._rb_synced:
            self._rollback("connected", self._net_cfg)
            self._rb_synced = True
        await self.conn.client.publish(self.status_topic, b'{"connected":true}', qos=1, retain=True)
        self._units_due = True
        self._report.set()  # report the current state on every (re)connect

    # --- watchdog -------------------------------------------------------------------------------
    async def watchdog(self):
        try:
            import machine
            wdt = machine.WDT(timeout=int(self.cfg["watchdog_s"] * 1000))
        except (ImportError, AttributeError, ValueError) as e:
            log("watchdog: not available here (%r)" % e)
            return
        while True:
            # healthy: the sampler ran within two intervals (a long TLS handshake blocks the loop
            # for seconds; the 30-60 s timeout leaves room for it)
            late = ticks_diff(ticks_ms(), self.last_sample_ms)
            if late < 2 * self.cfg["interval_s"] * 1000 + 5000:
                wdt.feed()
            await asyncio.sleep(1)

    async def run(self):
        tasks = [self.sampler(), self.watchdog()] + self.start_network()
        gc.collect()
        await asyncio.gather(*tasks)


def main():
    # the boot's one-off work (config checks, config id) in a module of its own, unloaded after
    import app_boot
    app = app_boot.configured_app()
    del app_boot
    unload("app_boot")
    if app is not None:
        asyncio.run(app.run())
