"""The soak's run: the stack and the boards set up, the chaos, the drain, then the report.

The boards are provisioned as a factory would: inject's own files (certificates as DER, the
merged config) are written into each board's flash folder before its first power-on, so each board
boots once, straight into its application (`edgeshadow inject` over serial has its own tests; here
it cost three extra boots per board and mpremote's byte-by-byte reads, for nothing the soak
measures)."""
import json
import random
import shutil
import time
from pathlib import Path

from host_tools.cloud import certs
from host_tools.cloud.broker import ADMIN_CN, Broker
from host_tools.errors import EdgeshadowError
from host_tools.sim.soak import report
from host_tools.sim.soak.chaos import ChaosEvents
from host_tools.sim.soak.stack import Monitor, Relay, ServiceProcess

INTERVAL_S = 1
BOARD = "sim"  # the virtual board's definition: its gc_heap (112,000 B) and its ROMFS partition
MARK = ".edgeshadow-soak"  # a folder a soak made: the next soak may empty it, and no other


class Soak(ChaosEvents):
    def __init__(self, workdir, seconds, n_boards, seed, heap, runtime, say):
        self.workdir, self.seconds, self.n, self.seed = Path(workdir), seconds, n_boards, seed
        self.heap, self.runtime, self.say = heap, runtime, say
        self.rng = random.Random(seed)
        self.events = []        # what was done: {"at", "kind", "thing", "outage_end", "affects"}
        self.hostile_sent = {}  # thing -> count
        self.boards, self.relays = [], []
        self.marks, self.setup_boots = {}, {}
        self.heap_low = {}
        self.timing = {}        # wall seconds per phase: setup, chaos, drain, stop
        self.broker = self.service = self.monitor = None

    def _fresh_workdir(self):
        shutil.rmtree(self.workdir, ignore_errors=True)  # run() checked it is a soak's own folder
        self.workdir.mkdir(parents=True)
        (self.workdir / MARK).write_text("edgeshadow soak: emptied by the next soak\n")

    def _phase(self, name, since):
        self.timing[name] = round(time.monotonic() - since, 1)
        return time.monotonic()

    def run(self):
        t = time.monotonic()
        try:
            self._setup()
            t = self._phase("setup", t)
            self.say(f"soak: {self.n} boards connected in {self.timing['setup']} s; "
                     f"chaos for {self.seconds} s (seed {self.seed})")
            self._chaos()
            t = self._phase("chaos", t)
            self._drain()
            t = self._phase("drain", t)
        finally:
            self._teardown()
            self._phase("stop", t)
        return report.build(self)

    # -- set-up and teardown --------------------------------------------------------------------
    def _setup(self):
        from host_tools.sim.board import VirtualBoard
        t0 = time.monotonic()
        self._fresh_workdir()
        ca = self.workdir / "ca"
        certs.init_ca(ca)
        self.broker = Broker(self.workdir / "broker", ca).start()
        self.service = ServiceProcess(self.broker, self.workdir / "shadows")
        self.service.start()
        self.monitor = Monitor(self.broker)
        self.say(f"soak: broker, shadow service and monitor up at {time.monotonic() - t0:.1f} s")
        for i in range(1, self.n + 1):
            thing = f"soak-{i:03d}"
            certs.issue_device(thing, self.workdir / "certs" / thing, ca)
            relay = Relay(self.broker.port)
            self.relays.append(relay)
            vb = VirtualBoard(self.workdir / "boards" / thing, thing=thing, board=BOARD, scenario="nominal",
                              runtime=self.runtime, heap=self.heap)
            self.boards.append(vb)
            vb.prepare()
            self._provision(vb, relay)
        self.say(f"soak: {self.n} boards laid out and provisioned at {time.monotonic() - t0:.1f} s")
        for vb in self.boards:
            vb.launch()
        for vb in self.boards:
            vb.wait_ready()
        self.say(f"soak: {self.n} boards booted at {time.monotonic() - t0:.1f} s")
        for vb in self.boards:
            vb.wait_for_log("net: connected", timeout=60)
        self.marks = {vb.thing: len(vb.log()) for vb in self.boards}
        self.setup_boots = {vb.thing: vb.boots for vb in self.boards}   # 1 each: provisioned in flash

    def _provision(self, vb, relay):
        """inject's files for this board (checked by inject.prepare), written into its flash."""
        from host_tools.demo import device_config
        from host_tools.device import inject
        cfg = self.workdir / f"config-{vb.thing}.json"
        cfg.write_text(json.dumps(device_config(relay.port, INTERVAL_S)))
        plan = inject.prepare(vb.thing, vb.thing, self.workdir / "certs", config=cfg)
        config = inject.merge_config(plan.config, vb.thing, plan.defaults, plan.endpoint)
        files = dict(plan.files)
        files[inject.BOARD_CONFIG] = (json.dumps(config, indent=1) + "\n").encode()
        for path, data in files.items():
            dest = vb.flash_dir / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)

    def _teardown(self):
        for vb in self.boards:
            vb.stop()
        for r in self.relays:
            r.stop()
        if self.monitor is not None:
            self.monitor.close()
        if self.service is not None:
            self.service.stop()
        if self.broker is not None:
            self.broker.stop()

    # -- drain ----------------------------------------------------------------------------------
    def _drain(self, timeout=report.RECONNECT_DEADLINE_S):
        """Chaos over: wait until every board is back after its last outage and its delivered
        seqs are contiguous, at most `timeout` s (a board may sit out its backoff cap)."""
        self.say("soak: chaos over, draining the spools")
        last = {}
        for e in self.events:
            for thing in e["affects"]:
                last[thing] = e["outage_end"]
        deadline = time.monotonic() + timeout
        kills = [e["at"] for e in self.events if e["kind"] == "broker_kill"]
        while time.monotonic() < deadline:
            with self.monitor.lock:   # every seq up to the newest arrived, but those a broker kill took
                flowing = all(report.contiguous(self.monitor.seqs.get(vb.thing, []), lambda gap, t=vb.thing:
                                                report.in_broker_kill(gap, self.monitor.arrived.get(t, {}), kills))
                              for vb in self.boards)
            back = all(vb.thing not in last or self.monitor.reconnected(vb.thing, last[vb.thing] - 0.5)
                       for vb in self.boards)
            if flowing and back:
                break
            time.sleep(1)
        time.sleep(2 * INTERVAL_S)
        self._read_heap_low()

    def _read_heap_low(self):
        """heap.min_free from each board's reported shadow: its low mark since its last boot."""
        from host_tools.cloud.shadow_api import LocalShadow
        self.heap_low = {}
        crt, key = self.broker.client_cert(ADMIN_CN)
        try:
            with LocalShadow(self.broker.host, self.broker.port, self.broker.ca_cert, crt, key, timeout=5) as sh:
                for vb in self.boards:
                    heap = sh.get(vb.thing).get("state", {}).get("reported", {}).get("heap") or {}
                    self.heap_low[vb.thing] = heap.get("min_free")
        except EdgeshadowError as e:
            self.say(f"soak: could not read the boards' heap from their shadows: {e}")


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
    from host_tools.device.boards import load_board
    from host_tools.sim import runtimes
    if runtime == "auto":
        runtime = "esp32like" if runtimes.available("esp32like") else "unix"
    runtimes.path(runtime)  # a clear error when it is not built
    if heap is not None:
        heap = runtimes.parse_size(heap)
    elif runtime == "esp32like":   # the board's own heap: the firmware's modules sit in its ROMFS
        heap = runtimes.board_heap(load_board(BOARD))
    seed = random.randrange(1 << 30) if seed is None else seed
    return Soak(workdir, seconds, boards, seed, heap, runtime, say).run()
