# The board side of `edgeshadow bench` and `edgeshadow calibrate` (host_tools/bench/): reads the
# configured metrics through the firmware's own board layer and calibration chains, as the running
# firmware would. Deployed with the firmware but imported only by the host, over the raw REPL,
# after the main loop was stopped (app.py never imports it: in normal running it costs no RAM).
#
# The host calls one function per exec; call() prints the answer as one JSON line:
#   import benchside as _bs
#   _bs.call("start")              # every metric (bench); _bs.call("start", "voltage"): one (calibrate)
#   _bs.call("read", 5, 0)         # 5 reads, 0 ms apart: [[read_us, raws, statuses, calibrated], ...]
#   _bs.call("feed")               # feed the watchdog while the host waits (a person at the bench)
# RAM on the ESP32-like runtime (compiled .mpy, after the firmware ran and was stopped): the import
# takes about 3.8 KB, a session of the four sim metrics about 12.7 KB more (the board layer's
# drivers and the calibration chains; config validation is unloaded after use); from a ROMFS
# partition 1.7 KB and 9.5 KB. The script strings it replaces took 41.9 KB, compiled on the board.
# A problem the person can fix (no /config.json, an invalid config, an unknown metric) answers
# {"error": "..."}; anything else raises, and the host reports the board's exception.
import gc
import json
import time

from compat import ticks_diff, ticks_us, unload


class BenchError(ValueError):
    pass


def watchdog(cfg, machine=None):
    """The firmware's watchdog, made again with its own timeout (None when the config has none).
    Once the firmware ran, its watchdog runs and can be neither stopped nor asked whether it runs;
    making it again only re-arms it, and the firmware makes the same one when it boots."""
    if not cfg.get("watchdog_s"):
        return None
    try:
        if machine is None:
            import machine
        return machine.WDT(timeout=int(cfg["watchdog_s"] * 1000))
    except Exception:  # a port without a watchdog
        return None


class Session:
    """The metrics under test (all, or the one being calibrated) with their drivers and chains."""

    def __init__(self, cfg, board_def, metric=None, machine=None, wdt=None):
        from edge import calibration
        cfg = _validated(cfg)
        have = cfg["metrics"]
        if metric is not None and metric not in have:
            raise BenchError("no metric %r in /config.json (it has: %s)" % (metric, ", ".join(sorted(have))))
        self.metrics = (metric,) if metric is not None else tuple(sorted(have))
        mcfgs = dict((m, have[m]) for m in self.metrics)
        from board import Board
        self.board = Board(board_def, {"metrics": mcfgs}, machine)
        self.chains = [calibration.build_chain(mcfgs[m].get("calibration")) for m in self.metrics]
        sensors = board_def.get("sensors", {})
        self.info = {"metrics": list(self.metrics), "thing": cfg["thing"], "board": board_def.get("name"),
                     "virtual": bool(board_def.get("virtual")), "sku": cfg.get("sku"),
                     "units": dict((m, mcfgs[m].get("unit", "")) for m in self.metrics),
                     "drivers": dict((m, (mcfgs[m].get("sensor") or sensors.get(m) or {}).get("driver"))
                                     for m in self.metrics),
                     "calibration": dict((m, mcfgs[m].get("calibration") or []) for m in self.metrics),
                     "problems": self.board.problems}
        self.wdt = wdt if wdt is not None else watchdog(cfg, machine)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def read(self, n, interval_ms=0):
        """n reads of every metric: [read time in us, raw values, statuses, calibrated values]."""
        out = []
        for i in range(n):
            self.feed()
            if interval_ms and i:
                time.sleep(interval_ms / 1000)
            t0 = ticks_us()
            raw, st = self.board.read_all()
            dt = ticks_diff(ticks_us(), t0)
            raws = [raw.get(m) for m in self.metrics]
            out.append([dt, raws, [st.get(m, "no_data") for m in self.metrics],
                        [None if x is None else chain(x) for x, chain in zip(raws, self.chains)]])
        return out


def _validated(cfg):
    """The firmware's own config validation; its code leaves the heap afterwards (as in app.py)."""
    import sys
    loaded = set(sys.modules)
    from edge import config
    try:
        return config.load(cfg)
    except config.ConfigError as e:
        raise BenchError("/config.json is not valid: %s" % e)
    finally:
        unload(*[name for name in sys.modules if name not in loaded])


_session = None


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        raise BenchError("the board has no %s: deploy with `edgeshadow deploy`" % path)
    except ValueError:
        raise BenchError("%s is not valid JSON: fix it with `edgeshadow deploy`" % path)


def start(metric=None, machine=None, root=""):
    """Open the session (the previous one goes first, so its drivers leave the heap)."""
    global _session
    _session = None
    gc.collect()
    _session = Session(_load(root + "/config.json"), _load(root + "/board.json"), metric, machine)
    return _session.info


def _session_or_error():
    if _session is None:
        raise BenchError("no bench session: call start first")
    return _session


def call(name, *args):
    """Run start, read or feed and print its answer as one JSON line."""
    try:
        if name == "start":
            answer = start(*args)
        elif name == "read":
            answer = _session_or_error().read(*args)
        elif name == "feed":
            _session_or_error().feed()
            answer = {}
        else:
            raise BenchError("unknown call %r" % name)
    except BenchError as e:
        answer = {"error": str(e)}
    print(json.dumps(answer))
