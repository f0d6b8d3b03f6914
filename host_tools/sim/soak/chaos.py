"""The soak's chaos: the seeded schedule, and what each kind of event does to the running stack.

ChaosEvents is mixed into runner.Soak: it uses the soak's boards, relays, broker, service,
monitor, rng, and records what it did in self.events (when each outage ended, whom it affected)
and self.hostile_sent."""
import json
import os
import signal
import time

from host_tools.cloud.broker import ADMIN_CN
from host_tools.errors import EdgeshadowError

HOSTILE = [{"interval_s": 1e306}, {"watchdog_s": 1e306}, {"spool": {"max_bytes": 100}},
           {"spool": {"dir": "/config.json"}}, {"mqtt": {"telemetry_prefix": "#"}},
           {"metrics": {"current": {"calibration": [{"type": "round", "decimals": 400}]}}},
           {"metrics": {"current": {"calibration": [{"type": "multiply", "value": 1e308},
                                                    {"type": "multiply", "value": 1e308}]}}},
           {"wifi": {"ssid": "s" * 7000}}, {"interval_s": -1}, {"mqtt": {"batch_max": 10 ** 9}}]
BOARD_EVENTS = ("board_kill", "power_cycle", "wifi_drop", "delta_hostile", "delta_valid")


def schedule(seconds, n_boards, rng):
    """[(at_s, kind, board index or None)] for a run of `seconds`: the 600 s run has 10 broker
    SIGKILLs and 5 restarts, 5 board kills and 2 power cycles, 3 Wi-Fi drops, 20 hostile deltas
    (issue 13's must-show), and fewer, at least one of each kind, in shorter runs."""
    scale = seconds / 600
    counts = {"broker_kill": 10, "broker_restart": 5, "service_kill": 3, "board_kill": 5,
              "power_cycle": 2, "wifi_drop": 3, "delta_hostile": 20, "delta_valid": 5}
    events = []
    for kind, n in counts.items():
        for _ in range(max(1, round(n * scale))):
            events.append((kind, rng.randrange(n_boards) if kind in BOARD_EVENTS else None))
    rng.shuffle(events)
    span = seconds * 0.85
    step = span / len(events)
    return [(round(5 + i * step, 1), kind, b) for i, (kind, b) in enumerate(events)]


class ChaosEvents:
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
