"""`edgeshadow soak`: virtual boards against the local stack under a chaos schedule, then a report.

N virtual boards (the ESP32-like runtime when it is built, at SOAK_HEAP or --heap) run the
firmware against Mosquitto and the shadow service for a set time while a seeded schedule
SIGKILLs or restarts the broker, SIGKILLs the shadow service (a process of its own here), SIGKILLs
boards' firmware (a crash: the board reboots), power-cycles boards with their spool's meta.json
corrupted and stray files added in between, drops a board's Wi-Fi (each board reaches the broker
through a loopback relay of its own, which the stand-in for Wi-Fi cuts and holds down), and sends
valid and hostile desired-state deltas. A monitor counts every reading by (thing, seq).

After the schedule, chaos stops and the boards drain their spools; then the boards stop and each
one's spool on flash tells what it produced and what is still waiting. The report: readings
produced, delivered, lost (neither delivered nor on flash), duplicated (beyond the spool's bound:
per reboot meta_every - 1, per reconnect the unacknowledged window), out of order; reconnect
times; reboots, watchdog resets, crashes, MemoryErrors; hostile deltas applied. Exit 1 on any loss,
crash, hostile delta applied, board that did not reconnect, or duplicates beyond the bound.

The broker only listens once the monitor has subscribed again (relays hold the boards back until
then), so a reading the monitor missed is a reading lost, not a monitor that was late.
"""
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from host_tools import ROOT

from host_tools.cloud import certs
from host_tools.cloud.broker import ADMIN_CN, MONITOR_CN, SERVICE_CN, Broker
from host_tools.errors import EdgeshadowError

INTERVAL_S = 1
# A board that failed several attempts waits up to its backoff cap (net.backoff: 120 s, as the AWS
# SDKs) before the next one: a reconnect counts as missed only past the cap and a margin.
RECONNECT_DEADLINE_S = 150
# The boards' GC heap on the ESP32-like runtime: main's firmware runs in runtimes.NEEDED_HEAP
# (112,000 B, the WROOM's); with issue 13's additions it needs about 116 KB (measured), so the soak
# runs at 136 KB until that is cut back; --heap sets another.
SOAK_HEAP = 136 * 1024

META_EVERY = 20          # store.spool's default
WINDOW_RECORDS = 20 * 20  # net.mqtt max_inflight x mqtt.batch_max: records a reconnect may re-send
HOSTILE = [{"interval_s": 1e306}, {"watchdog_s": 1e306}, {"spool": {"max_bytes": 100}},
           {"spool": {"dir": "/config.json"}}, {"mqtt": {"telemetry_prefix": "#"}},
           {"metrics": {"current": {"calibration": [{"type": "round", "decimals": 400}]}}},
           {"metrics": {"current": {"calibration": [{"type": "multiply", "value": 1e308},
                                                    {"type": "multiply", "value": 1e308}]}}},
           {"wifi": {"ssid": "s" * 7000}}, {"interval_s": -1}, {"mqtt": {"batch_max": 10 ** 9}}]


def schedule(seconds, n_boards, rng):
    """[(at_s, kind, board index or None)] for a run of `seconds`: the 600 s run has 10 broker
    kills, 5 board kills, 3 Wi-Fi drops, 20 hostile deltas (and fewer, at least one each, below)."""
    scale = seconds / 600
    counts = {"broker_kill": 5, "broker_restart": 5, "service_kill": 3, "board_kill": 5,
              "power_cycle": 2, "wifi_drop": 3, "delta_hostile": 20, "delta_valid": 5}
    events = []
    for kind, n in counts.items():
        for _ in range(max(1, round(n * scale))):
            board = rng.randrange(n_boards) if kind in ("board_kill", "power_cycle", "wifi_drop",
                                                        "delta_hostile", "delta_valid") else None
            events.append((kind, board))
    rng.shuffle(events)
    span = seconds * 0.85
    step = span / len(events)
    return [(round(5 + i * step, 1), kind, b) for i, (kind, b) in enumerate(events)]


# -- the Wi-Fi stand-in: a relay per board ---------------------------------------------------------
class Relay:
    """127.0.0.1:port -> the broker; drop() cuts every connection and refuses new ones for a while."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.down_until = 0.0
        self.conns = set()
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.2)
            if not r:
                continue
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            if time.monotonic() < self.down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            self._close(s)

    def _close(self, s):
        with self.lock:
            self.conns.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def drop(self, seconds):
        self.down_until = time.monotonic() + seconds
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            self._close(s)

    def hold(self):
        self.drop(1e9)

    def release(self):
        self.down_until = 0.0

    def stop(self):
        self._stop = True
        self.thread.join(2)
        self.drop(0)
        self.sock.close()


# -- the shadow service as a process of its own (so it can be SIGKILLed) ---------------------------
_SERVICE = """
import signal, sys
from host_tools.cloud.shadow_service import ShadowService
s = ShadowService(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
s.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
s.stop()
"""


class ServiceProcess:
    def __init__(self, broker, state_dir):
        self.broker, self.state_dir, self.proc = broker, state_dir, None

    def start(self, timeout=20):
        crt, key = self.broker.client_cert(SERVICE_CN)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVICE, self.broker.host, str(self.broker.port),
                                      str(self.broker.ca_cert), str(crt), str(key), str(self.state_dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r or self.proc.stdout.readline().strip() != "ready":
            self.kill()
            raise EdgeshadowError("the shadow service process did not start")

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


# -- the monitor: every reading by (thing, seq), and link-state messages ---------------------------
class Monitor:
    def __init__(self, broker):
        import paho.mqtt.client as mqtt
        from host_tools.cloud.shadow_service import tls_context
        crt, key = broker.client_cert(MONITOR_CN)
        self.seqs = {}          # thing -> list of seqs in arrival order
        self.status = []        # (monotonic time, thing, connected, retained)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=MONITOR_CN, protocol=mqtt.MQTTv311,
                        clean_session=True)
        c.tls_set_context(tls_context(broker.ca_cert, crt, key))
        c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe([("dt/+/telemetry", 1), ("dt/+/alerts", 1),
                                                                 ("dt/+/status", 1)])
        c.on_subscribe = lambda cl, ud, mid, rcs, pr: self.subscribed.set()
        c.on_disconnect = lambda cl, ud, fl, rc, pr: self.subscribed.clear()
        c.on_message = self._on_message
        self.client = c
        c.connect(broker.host, broker.port, keepalive=30)
        c.loop_start()

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) != 3:
            return
        thing, kind = parts[1], parts[2]
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if kind == "status":
                self.status.append((time.monotonic(), thing, bool(doc.get("connected")), bool(msg.retain)))
            else:
                recs = doc if isinstance(doc, list) else [doc]
                self.seqs.setdefault(thing, []).extend(r["seq"] for r in recs if isinstance(r, dict) and "seq" in r)

    def reconnected(self, thing, after):
        with self.lock:
            for t, th, up, retained in self.status:
                if th == thing and up and not retained and t >= after:
                    return t
        return None

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


# -- the run -----------------------------------------------------------------------------------------
class Soak:
    def __init__(self, workdir, seconds, n_boards, seed, heap, runtime, say):
        self.workdir, self.seconds, self.n, self.seed = Path(workdir), seconds, n_boards, seed
        self.heap, self.runtime, self.say = heap, runtime, say
        self.rng = random.Random(seed)
        self.events = []        # what was done: {"at", "kind", "thing", "outage_end", "affects"}
        self.hostile_sent = {}  # thing -> count
        self.boards, self.relays = [], []
        self.marks = {}
        self.heap_low = {}

    def _fresh_workdir(self):
        shutil.rmtree(self.workdir, ignore_errors=True)  # run() checked it is a soak's own folder
        self.workdir.mkdir(parents=True)
        (self.workdir / MARK).write_text("edgeshadow soak: emptied by the next soak\n")

    def run(self):
        from host_tools.demo import device_config
        from host_tools.device.inject import inject_boards
        from host_tools.device.link import BoardLink
        from host_tools.sim.board import VirtualBoard
        self._fresh_workdir()
        ca = self.workdir / "ca"
        certs.init_ca(ca)
        self.broker = Broker(self.workdir / "broker", ca).start()
        self.service = ServiceProcess(self.broker, self.workdir / "shadows")
        self.service.start()
        self.monitor = Monitor(self.broker)
        try:
            things = [f"soak-{i:03d}" for i in range(1, self.n + 1)]
            for t in things:
                certs.issue_device(t, self.workdir / "certs" / t, ca)
                relay = Relay(self.broker.port)
                self.relays.append(relay)
                vb = VirtualBoard(self.workdir / "boards" / t, thing=t, scenario="nominal",
                                  runtime=self.runtime, heap=self.heap)
                self.boards.append(vb)
            for vb in self.boards:
                vb.launch()
            for vb in self.boards:
                vb.wait_ready()
            for vb, relay in zip(self.boards, self.relays):
                cfg = self.workdir / f"config-{vb.thing}.json"
                cfg.write_text(json.dumps(device_config(relay.port, INTERVAL_S)))
                [res] = inject_boards([(vb.port, vb.thing)], self.workdir / "certs", config=cfg)
                if not res.ok:
                    raise EdgeshadowError(f"inject {vb.thing}: {res.detail}")
                with BoardLink(vb.port) as link:
                    link.soft_reset()
            t0 = time.monotonic()
            for vb in self.boards:
                vb.wait_for_log("net: connected", timeout=60)
            self.marks = {vb.thing: len(vb.log()) for vb in self.boards}
            self.say(f"soak: {self.n} boards connected in {time.monotonic() - t0:.1f} s; "
                     f"chaos for {self.seconds} s (seed {self.seed})")
            self._chaos()
            self._drain()
        finally:
            for vb in self.boards:
                vb.stop()
            for r in self.relays:
                r.stop()
            self.monitor.close()
            self.service.stop()
            self.broker.stop()
        return self._report()

    # -- chaos ----------------------------------------------------------------------------------
    def _chaos(self):
        start = time.monotonic()
        for at, kind, b in schedule(self.seconds, self.n, self.rng):
            wait = start + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            vb = self.boards[b] if b is not None else None
            self.say(f"soak: t={time.monotonic() - start:5.1f} s {kind}{' ' + vb.thing if vb else ''}")
            getattr(self, "_" + kind)(vb, b)
        left = start + self.seconds - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _event(self, kind, thing=None, affects=None, outage_end=None):
        self.events.append({"at": time.monotonic(), "kind": kind, "thing": thing,
                            "affects": affects if affects is not None else ([thing] if thing else []),
                            "outage_end": outage_end if outage_end is not None else time.monotonic()})

    def _broker_down_up(self, kind, kill):
        for r in self.relays:
            r.hold()
        if kill:
            self.broker.proc.kill()
            self.broker.proc.wait()
            self.broker.proc = None
        else:
            self.broker.stop()
        self.monitor.subscribed.clear()
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.broker.start()
        self.monitor.subscribed.wait(30)   # the monitor first, then the boards
        for r in self.relays:
            r.release()
        self._event(kind, affects=[vb.thing for vb in self.boards])

    def _broker_kill(self, vb, b):
        self._broker_down_up("broker_kill", True)

    def _broker_restart(self, vb, b):
        self._broker_down_up("broker_restart", False)

    def _service_kill(self, vb, b):
        self.service.kill()
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.service.start()
        self._event("service_kill", affects=[])

    def _board_kill(self, vb, b):
        child = vb.state().get("child_pid")
        if child:
            try:
                os.killpg(child, signal.SIGKILL)   # the firmware dies; the board reboots
            except ProcessLookupError:
                pass
        self._event("board_kill", vb.thing)

    def _power_cycle(self, vb, b):
        vb.stop()
        spool = vb.flash_dir / "spool"
        meta = spool / "meta.json"
        try:
            m = json.loads(meta.read_text())
            m["head"] = m.get("head", 1) ^ (1 << self.rng.randrange(4, 24))   # a flipped bit
            meta.write_text(json.dumps(m))
        except (OSError, ValueError):
            meta.write_text('{"head": 4294967301, "dropped": 0}')
        (spool / "zzzzzzzz.seg").write_text("stray")
        (spool / ("%08x.seg" % self.rng.randrange(1 << 20, 1 << 24))).mkdir(exist_ok=True)
        vb.launch()
        vb.wait_ready()
        self._event("power_cycle", vb.thing)

    def _wifi_drop(self, vb, b):
        secs = self.rng.uniform(3, 8)
        self.relays[b].drop(secs)
        self._event("wifi_drop", vb.thing, outage_end=time.monotonic() + secs)

    def _set_desired(self, thing, desired):
        from host_tools.cloud.shadow_api import LocalShadow
        crt, key = self.broker.client_cert(ADMIN_CN)
        for _ in range(5):
            try:
                with LocalShadow(self.broker.host, self.broker.port, self.broker.ca_cert, crt, key, timeout=5) as s:
                    s.set_desired(thing, desired)
                return True
            except EdgeshadowError:
                time.sleep(1)
        return False

    def _delta_hostile(self, vb, b):
        state = self.rng.choice(HOSTILE)
        if self._set_desired(vb.thing, state):
            self.hostile_sent[vb.thing] = self.hostile_sent.get(vb.thing, 0) + 1
            time.sleep(2)
            self._set_desired(vb.thing, {k: None for k in state})
        self._event("delta_hostile", vb.thing, affects=[])

    def _delta_valid(self, vb, b):
        self._set_desired(vb.thing, {"interval_s": self.rng.choice([1, 2])})
        self._event("delta_valid", vb.thing, affects=[])

    # -- drain and count --------------------------------------------------------------------------
    def _drain(self, timeout=RECONNECT_DEADLINE_S):
        """Chaos over: wait until every board is back after its last outage and its delivered
        seqs are contiguous, at most `timeout` s (a board may sit out its backoff cap)."""
        self.say("soak: chaos over, draining the spools")
        last = {}
        for e in self.events:
            for thing in e["affects"]:
                last[thing] = e["outage_end"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.monitor.lock:
                flowing = all(self._contiguous(self.monitor.seqs.get(vb.thing, [])) for vb in self.boards)
            back = all(vb.thing not in last or self.monitor.reconnected(vb.thing, last[vb.thing] - 0.5)
                       for vb in self.boards)
            if flowing and back:
                break
            time.sleep(1)
        time.sleep(2 * INTERVAL_S)
        self.heap_low = {}
        from host_tools.cloud.shadow_api import LocalShadow
        crt, key = self.broker.client_cert(ADMIN_CN)
        try:
            with LocalShadow(self.broker.host, self.broker.port, self.broker.ca_cert, crt, key, timeout=5) as sh:
                for vb in self.boards:   # heap.min_free: the board's low mark since its last boot
                    heap = sh.get(vb.thing).get("state", {}).get("reported", {}).get("heap") or {}
                    self.heap_low[vb.thing] = heap.get("min_free")
        except EdgeshadowError as e:
            self.say(f"soak: could not read the boards' heap from their shadows: {e}")

    @staticmethod
    def _contiguous(seqs):
        s = set(seqs)
        return bool(s) and len(s) == max(s) - min(s) + 1 and min(s) == 1

    def _report(self):
        sys.path.insert(0, str(ROOT / "firmware"))
        from store.spool import Spool
        boards = {}
        ok = True
        reconnects = []
        for vb in self.boards:
            log = vb.log()[self.marks.get(vb.thing, 0):]   # from the start of the chaos
            sp = Spool(str(vb.flash_dir / "spool"), 1 << 20)
            produced = sp.next_seq - 1
            pending = {r[0] for r in sp.peek(1 << 20)}
            dropped = sp.dropped
            sp.close()
            seen = self.monitor.seqs.get(vb.thing, [])
            seen_set = set(seen)
            lost = [s for s in range(1, produced + 1) if s not in seen_set and s not in pending]
            dups = len(seen) - len(seen_set)
            ooo, top, before = 0, 0, set()
            for s in seen:
                if s < top and s not in before:   # a first arrival below one already seen
                    ooo += 1
                before.add(s)
                top = max(top, s)
            kills = sum(1 for e in self.events if e["thing"] == vb.thing and e["kind"] in ("board_kill", "power_cycle"))
            outages = [e for e in self.events if vb.thing in e["affects"]]
            times, missed = [], 0
            for e in outages:
                t = self.monitor.reconnected(vb.thing, e["outage_end"] - 0.5)
                if t is None or t - e["outage_end"] > RECONNECT_DEADLINE_S:
                    missed += 1
                else:
                    times.append(max(0.0, t - e["outage_end"]))
            reconnects += times
            bound = kills * (META_EVERY - 1) + len(outages) * WINDOW_RECORDS
            reboots = log.count("ets Jun  8 2016")
            crashes = log.count("Guru Meditation") - sum(1 for e in self.events if e["thing"] == vb.thing
                                                         and e["kind"] == "board_kill")
            tracebacks = [ln for ln in log.splitlines() if ln.startswith("Traceback") or "sampler: error" in ln]
            row = {"produced": produced, "delivered": len(seen_set), "pending_on_flash": len(pending),
                   "lost": len(lost), "lost_seqs": lost[:20], "dropped_spool_full": dropped,
                   "duplicated": dups, "duplicate_bound": bound, "out_of_order": ooo,
                   "reboots": reboots, "watchdog_resets": log.count("TG0WDT_SYS_RESET"),
                   "crashes": max(0, crashes), "tracebacks": len(tracebacks), "memory_errors": log.count("MemoryError"),
                   "outages": len(outages), "reconnects_missed": missed,
                   "hostile_deltas_sent": self.hostile_sent.get(vb.thing, 0),
                   "hostile_deltas_applied": self._hostile_applied(vb),
                   "heap_low": self.heap_low.get(vb.thing)}
            bad = (row["lost"] or dups > bound or row["watchdog_resets"] or row["crashes"] or row["tracebacks"]
                   or row["memory_errors"] or missed or row["hostile_deltas_applied"] or produced == 0)
            row["ok"] = not bad
            ok = ok and not bad
            boards[vb.thing] = row
        counts = {}
        for e in self.events:
            counts[e["kind"]] = counts.get(e["kind"], 0) + 1
        return {"ok": ok, "seconds": self.seconds, "boards": boards, "events": counts, "seed": self.seed,
                "runtime": self.runtime, "heap": self.heap,
                "reconnect_s": {"n": len(reconnects),
                                "median": round(statistics.median(reconnects), 2) if reconnects else None,
                                "max": round(max(reconnects), 2) if reconnects else None},
                "totals": {k: sum(r[k] for r in boards.values()) for k in
                           ("produced", "delivered", "lost", "duplicated", "out_of_order", "reboots",
                            "watchdog_resets", "crashes", "memory_errors", "hostile_deltas_sent",
                            "hostile_deltas_applied", "reconnects_missed")}}

    @staticmethod
    def _hostile_applied(vb):
        """1 when the board's config.json at the end holds anything of a hostile delta (or is not
        a valid config at all), else 0."""
        from edge import config as econfig
        try:
            cfg = json.loads((vb.flash_dir / "config.json").read_text())
        except (OSError, ValueError):
            return 1
        cal = json.dumps(cfg.get("metrics", {}).get("current", {}).get("calibration", []))
        spool = cfg.get("spool", {})
        good = (not econfig.validate(cfg) and cfg["interval_s"] in (1, 2) and cfg.get("watchdog_s", 45) <= 3600
                and spool.get("dir", "/spool") == "/spool" and spool.get("max_bytes", 65536) >= 4096
                and cfg["mqtt"].get("telemetry_prefix", "dt") == "dt"
                and len(cfg.get("wifi", {}).get("ssid", "")) <= 32 and "1e+308" not in cal
                and '"decimals": 400' not in cal)
        return 0 if good else 1


def format_report(r):
    t = r["totals"]
    lines = [f"soak {r['seconds']} s, {len(r['boards'])} boards, runtime {r['runtime']}"
             f"{' heap %d B' % r['heap'] if r['heap'] else ''}, seed {r['seed']}: {'OK' if r['ok'] else 'FAILED'}",
             "events: " + ", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())),
             f"readings: produced {t['produced']}, delivered {t['delivered']}, lost {t['lost']}, "
             f"duplicated {t['duplicated']}, out of order {t['out_of_order']}",
             f"reconnects: {r['reconnect_s']['n']} (median {r['reconnect_s']['median']} s, max "
             f"{r['reconnect_s']['max']} s), missed {t['reconnects_missed']}",
             f"reboots {t['reboots']}, watchdog resets {t['watchdog_resets']}, crashes {t['crashes']}, "
             f"MemoryErrors {t['memory_errors']}, hostile deltas applied {t['hostile_deltas_applied']} "
             f"of {t['hostile_deltas_sent']}"]
    for thing, b in sorted(r["boards"].items()):
        lines.append(f"  {thing}: {'ok' if b['ok'] else 'FAILED'} produced {b['produced']} delivered "
                     f"{b['delivered']} pending {b['pending_on_flash']} lost {b['lost']} dup {b['duplicated']}"
                     f"/{b['duplicate_bound']} ooo {b['out_of_order']} reboots {b['reboots']} "
                     f"outages {b['outages']} missed {b['reconnects_missed']} tracebacks {b['tracebacks']} "
                     f"heap low {b['heap_low'] if b['heap_low'] is not None else 'n/a'}")
    return "\n".join(lines)


MARK = ".edgeshadow-soak"  # a folder a soak made: the next soak may empty it, and no other


def check_workdir(workdir):
    """A soak empties its folder first: only a new, empty or earlier soak's folder is accepted."""
    w = Path(workdir)
    if w.exists() and not w.is_dir():
        raise EdgeshadowError(f"soak folder {w}: not a folder")
    made = {"ca", "broker", "shadows", "certs", "boards"}  # an earlier soak's, from before MARK
    if w.is_dir() and not (w / MARK).exists() and any(
            p.name not in made and not (p.name.startswith("config-") and p.suffix == ".json")
            for p in w.iterdir()):
        raise EdgeshadowError(f"soak folder {w} holds files no soak made (no {MARK}); a soak empties "
                              "its folder first: give a new or empty one")


def run(workdir, seconds=600, boards=5, seed=None, heap=None, runtime="auto", say=print):
    check_workdir(workdir)
    if not 10 <= seconds <= 86400:
        raise EdgeshadowError(f"--seconds {seconds}: a soak runs 10 to 86400 s")
    if not 1 <= boards <= 20:
        raise EdgeshadowError(f"--boards {boards}: 1 to 20 virtual boards")
    from host_tools.sim import runtimes
    if runtime == "auto":
        runtime = "esp32like" if runtimes.available("esp32like") else "unix"
    runtimes.path(runtime)  # a clear error when it is not built
    if heap is not None:
        heap = runtimes.parse_size(heap)
    elif runtime == "esp32like":
        heap = max(runtimes.NEEDED_HEAP, SOAK_HEAP)
    seed = random.randrange(1 << 30) if seed is None else seed
    return Soak(workdir, seconds, boards, seed, heap, runtime, say).run()
