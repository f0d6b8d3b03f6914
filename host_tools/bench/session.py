"""The host's end of the board-side bench module (firmware/benchside.py), over one BoardLink.

The firmware deploys benchside with the rest of it (compiled by mpy-cross like every module);
app.py never imports it. The host stops the main loop, then calls its functions one exec each:

    with BenchBoard(link) as board:      # Ctrl-C to the main loop; soft reset on the way out
        info = board.start()             # every metric, or board.start("voltage")
        rows = board.read(5)             # [[read_us, raws, statuses, calibrated], ...]

On the virtual board the simulated hardware (host_tools/sim/mpy/simhw.py) also takes the bench's
physical settings: `quiet()` pauses its anomaly generator, `hold()` applies a reference value.
Whatever stops the board from answering raises EdgeshadowError with exit code 3 (could not test).
"""
import json

from host_tools.errors import EXIT_UNTESTED, EdgeshadowError


def last_json_line(out, what):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise EdgeshadowError(f"the board's answer to {what} is not JSON: {out.strip()[-300:]!r}",
                          exit_code=EXIT_UNTESTED)


class BenchBoard:
    def __init__(self, link, say=None):
        self.link = link
        self.say = say or (lambda msg: None)
        self.info = None
        self.banner = None          # the boot output after the soft reset (None: not restarted)
        self.restart_error = None   # why the restart failed, when it did

    # -- the session's lifetime ----------------------------------------------------------------
    def __enter__(self):
        self.say(f"stopping the firmware's main loop on {self.link.port}")
        try:
            self.link.interrupt()
        except EdgeshadowError as e:
            raise EdgeshadowError(str(e), exit_code=EXIT_UNTESTED)
        return self

    def __exit__(self, exc_type, exc, tb):
        """Always restart the firmware; a failed restart is kept in restart_error (the caller
        reports it after its results), never raised over the error that stopped the work."""
        self.say("restarting the firmware")
        if self.info and self.info.get("virtual"):
            try:
                self._sim("bench_quiet(False)", "resuming the simulation")
            except EdgeshadowError:
                pass  # the soft reset below starts the simulation afresh anyway
        try:
            self.banner = self.link.soft_reset() or ""
        except EdgeshadowError as e:
            self.restart_error = e
        return False

    # -- benchside calls -----------------------------------------------------------------------
    def call(self, what, name, *args, timeout=10):
        code = f"import benchside as _bs\n_bs.call({name!r}{''.join(', ' + repr(a) for a in args)})"
        try:
            out = self.link.exec(code, timeout=timeout)
        except EdgeshadowError as e:
            if "no module named 'benchside'" in str(e).lower():
                raise EdgeshadowError("the board's firmware has no bench module (benchside): "
                                      "deploy this firmware with `edgeshadow deploy`", exit_code=EXIT_UNTESTED)
            raise EdgeshadowError(f"could not run {what} on the board: {e}", exit_code=EXIT_UNTESTED)
        answer = last_json_line(out, what)
        if isinstance(answer, dict) and "error" in answer:
            raise EdgeshadowError(answer["error"])  # the board's own words: a thing a person fixes
        return answer

    def start(self, metric=None):
        self.info = self.call("the bench set-up", "start", *(() if metric is None else (metric,)))
        if self.info.get("virtual"):
            self._sim("bench_quiet(True)", "pausing the simulated anomalies")
        return self.info

    def read(self, n, interval_ms=0, timeout=10):
        return self.call("a bench read", "read", int(n), int(interval_ms), timeout=timeout)

    def feed(self):
        self.call("feeding the watchdog", "feed")

    # -- the virtual board's physics -------------------------------------------------------------
    def hold(self, signal, value):
        """Hold the simulated physical signal at `value` (a reference applied at the bench)."""
        self._sim(f"set_signal({signal!r}, {float(value)!r})", "setting the simulated reference")

    def _sim(self, call, what):
        try:
            self.link.exec(f"import simhw\nsimhw.{call}")
        except EdgeshadowError as e:
            raise EdgeshadowError(f"{what} failed: {e}", exit_code=EXIT_UNTESTED)
