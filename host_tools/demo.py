"""`edgeshadow demo`: the whole product on one machine, without hardware or an AWS account.

Starts the local broker and shadow service, makes certificates for N virtual boards, injects them
(the same code path as `edgeshadow inject` on a real board), starts the boards with the reference
smart-grid scenario and occasional anomalies, stores what they send (the historian, in
workdir/broker/historian.sqlite), serves the dashboard on 127.0.0.1 (its URL is printed) and shows the fleet
live. Ctrl-C (or SIGTERM) stops everything it started: boards, historian, dashboard, shadow service,
Mosquitto.
"""
import json
import re
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from host_tools import CERTS_DIR, DATA_DIR, ROOT

from host_tools.cloud import certs
from host_tools.cloud.broker import local_stack
from host_tools.errors import EdgeshadowError
from host_tools.device.inject import inject_boards
from host_tools.device.link import BoardLink
from host_tools.sim import runtimes
from host_tools.sim.board import start_boards, stop_boards
from host_tools.sim.scenarios import load_scenario

DEFAULT_WORKDIR = ROOT / "run" / "demo"
SIM_CONFIG = DATA_DIR / "configs" / "grid-sensor-sim.json"
THING_PREFIX = "grid-sensor"


def device_config(broker_port, interval_s):
    """The virtual boards' config: the grid sensor, pointed at the local broker."""
    cfg = json.loads(SIM_CONFIG.read_text())
    cfg["interval_s"] = interval_s
    cfg["mqtt"] = {"endpoint": "localhost", "port": broker_port, "keepalive_s": 30}
    return cfg


def model_config(cfg, thing, seed):
    """cfg with a temperature model trained on two normal days of the device a "streams" scenario
    simulates for this board (what `edgeshadow train` does with a recording). The virtual conductor
    starts in thermal equilibrium, so the model's warm-up is one minute instead of five lags."""
    from host_tools.model import streams
    from host_tools.model import train
    from host_tools.sim.scenarios import stream_device
    spec = streams.load_spec()
    nominal, _ = streams.stream(spec, stream_device(thing, seed), 0, 2)
    # the streams are what the board reports (calibrated values): no calibration on top
    rule, _ = train.train_metric(dict(cfg, thing=thing), nominal, "temperature")
    rule["warm_s"] = 60
    return train.with_model(cfg, thing, [rule])


def ensure_device_certs(things, certs_dir, ca_dir, say):
    """A usable certificate per thing, signed by the local CA; reissued if missing or unusable."""
    for thing in things:
        thing_dir = certs_dir / thing
        try:
            certs.check(thing, thing_dir, root_ca=ca_dir / "ca.crt")
            say(f"certificate for {thing}: ok ({thing_dir})")
        except EdgeshadowError:
            certs.issue_device(thing, thing_dir, ca_dir)
            say(f"certificate for {thing}: issued ({thing_dir})")


class _Stop(threading.Event):
    """Set by Ctrl-C or SIGTERM. While the demo starts (broker, certificates, injection, boot),
    the first one also raises KeyboardInterrupt where the main thread is, so it stops at once
    (exit 130); once `running`, it ends the demo the normal way (exit 0)."""
    running = False

    def __init__(self):
        super().__init__()
        self.links = []  # boards being injected or booted: not waited for long once stopping

    def open_link(self, port):
        link = BoardLink(port)
        self.links.append(link)
        return link

    def on_signal(self, *_):
        first = not self.is_set()
        self.set()
        for link in self.links:  # the terminal's Ctrl-C stopped the virtual boards too: a cleanup
            link.answer_timeout = 0.5  # on a board that no longer answers is not worth 10 s
        if first and not self.running:
            raise KeyboardInterrupt


@contextmanager
def stop_on_signals():
    """A _Stop event for Ctrl-C and SIGTERM, so every shutdown takes the same clean path."""
    stop = _Stop()
    old = {sig: signal.signal(sig, stop.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def check_device_config(cfg, things):
    """The boards' config through the firmware's own validator before anything starts: a config
    every board would refuse at boot (`--interval 0`) is an error naming the option."""
    from host_tools.cloud.desired import firmware_modules
    config, _ = firmware_modules()
    try:
        config.load(dict(cfg, thing=things[0]))
    except config.ConfigError as e:
        hint = "; ".join(p.replace("interval_s:", "--interval:") for p in e.problems)
        raise EdgeshadowError(f"the boards would refuse this config: {hint}") from None


def boot_boards(boards, say, open_link=BoardLink, timeout=60.0):
    """Restart each board into the firmware and wait until its application runs with its config:
    the board's own refusal ("config: ... is not usable: ...") is an error naming it."""
    marks = {}
    for b in boards:
        marks[b.thing] = len(b.log())
        with open_link(b.port) as link:
            link.soft_reset()  # boot the firmware with its certificates and config
    for b in boards:
        deadline = time.monotonic() + timeout
        while True:
            out = b.log()[marks[b.thing]:]
            refused = re.search(r"config: \S+ is not usable: ([^\r\n]*)", out)
            if refused:
                raise EdgeshadowError(f"{b.thing} refused its config at boot: {refused.group(1)}")
            if f"thing {b.thing}, interval" in out:
                break
            if time.monotonic() > deadline:
                raise EdgeshadowError(f"{b.thing} did not start its application within {timeout:.0f} s; "
                                      f"its console ended with: {out[-200:]!r}")
            time.sleep(0.1)
        say(f"{b.thing}: running on {b.port} (log: edgeshadow logs --port {b.port})")


def ota_rollout(state_path, things, key, workdir, stop, say, after_s):
    """After after_s seconds: this firmware renamed <version>-ota, signed and rolled out one board at
    a time through the local jobs service; each board's progress is said as it changes."""
    import shutil as _sh
    from host_tools import FIRMWARE_DIR
    from host_tools.cloud import ota
    from host_tools.device.deploy import firmware_version
    if stop.wait(after_s):
        return
    version = firmware_version(FIRMWARE_DIR) + "-ota"
    fw = Path(workdir) / "ota" / "firmware"
    _sh.rmtree(fw, ignore_errors=True)
    _sh.copytree(FIRMWARE_DIR, fw, ignore=_sh.ignore_patterns("__pycache__", "*.pyc"))
    init = fw / "edge" / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "', f'VERSION = "{version}"  # was "', 1))
    bundle = ota.build(fw, key, version=version)
    with ota.LocalJobs.from_state(Path(state_path).parent) as jobs:
        job = ota.push_local(jobs, bundle, things, rollout=1, abort_after=1)
        say(f"ota: job {job} rolls app {version} out to {', '.join(things)}, one board at a time")
        seen = {}
        while not stop.wait(0.5):
            j = next(x for x in jobs.list_jobs() if x["jobId"] == job)
            for t, e in sorted(j["executions"].items()):
                key_ = (e["status"], e["statusDetails"].get("step"))
                if seen.get(t) != key_:
                    seen[t] = key_
                    say(f"ota: {t}: {e['status']} {e['statusDetails'].get('step', '')} "
                        f"{e['statusDetails'].get('reason', '')}".rstrip())
            if j["status"] != "IN_PROGRESS":
                say(f"ota: job {job} {j['status']}: " + ", ".join(f"{n} {s}" for s, n in sorted(j["counts"].items())))
                return


def check_arguments(devices, interval_s):
    """The boards' things, once the arguments are known to give configs the boards accept."""
    if not 1 <= devices <= 50:
        raise EdgeshadowError(f"--devices {devices}: the demo runs 1 to 50 virtual boards")
    things = [f"{THING_PREFIX}-{i:03d}" for i in range(1, devices + 1)]
    check_device_config(device_config(8883, interval_s), things)
    return things


def run(devices=3, workdir=DEFAULT_WORKDIR, certs_dir=CERTS_DIR, interval_s=5, scenario="demo",
        headless=False, seconds=None, say=print, runtime=None, heap=None, ota_after=None):
    things = check_arguments(devices, interval_s)
    workdir, certs_dir = Path(workdir), Path(certs_dir)
    boards_dir = workdir / "boards"
    shutil.rmtree(boards_dir, ignore_errors=True)  # fresh boards: the current firmware, no old spool
    with stop_on_signals() as stop:
        say("starting the local broker (Mosquitto, mutual TLS), the shadow and jobs services...")
        with local_stack(workdir / "broker", certs_dir / "ca") as (broker, _service, state_path):
            say(f"broker on {broker.host}:{broker.port}; state in {state_path}")
            ensure_device_certs(things, certs_dir, certs_dir / "ca", say)
            config_path = workdir / "device-config.json"
            config_path.write_text(json.dumps(device_config(broker.port, interval_s), indent=1))
            runtime = runtime or runtimes.default()
            with history_and_dashboard(state_path, workdir, config_path, say) as hist:
                _run_boards(devices, boards_dir, scenario, runtime, heap, certs_dir, config_path, state_path,
                            headless, seconds, stop, hist, say, ota_after)
    say("demo stopped; nothing left running")
    return 0


@contextmanager
def history_and_dashboard(state_path, workdir, config_path, say):
    """The historian (historian.sqlite beside broker.json) and the dashboard on 127.0.0.1."""
    from host_tools.history.dashboard import Dashboard
    from host_tools.history.historian import running
    db = Path(state_path).parent / "historian.sqlite"
    log = open(workdir / "historian.log", "a")  # not the terminal: the live view owns it
    try:
        with running(state_path, db, say=lambda m: print(m, file=log, flush=True)) as hist:
            with Dashboard(db, config=config_path) as dash:
                say(f"historian: {db} (`edgeshadow history THING --db {db}`)")
                say(f"dashboard: {dash.url}")
                yield hist
    finally:
        log.close()


def _inject(boards, scenario, certs_dir, config_path, ota_pub, stop, say):
    """Certificates and config into every board (a learned model per board for a "streams" scenario)."""
    if load_scenario(scenario).get("source") == "streams":
        cfg = json.loads(config_path.read_text())
        results = []
        for b in boards:
            say(f"{b.thing}: training its model on two normal days of its device...")
            path = config_path.parent / f"device-config-{b.thing}.json"
            path.write_text(json.dumps(model_config(cfg, b.thing, b.seed), indent=1))
            results += inject_boards([(b.port, b.thing)], certs_dir, config=path, progress=say,
                                     ota_key=ota_pub, link_factory=stop.open_link)
    else:
        results = inject_boards([(b.port, b.thing) for b in boards], certs_dir,
                                config=config_path, progress=say, ota_key=ota_pub, link_factory=stop.open_link)
    failed = [r for r in results if not r.ok]
    if failed:
        raise EdgeshadowError("injection failed: " + "; ".join(f"{r.thing}: {r.detail}" for r in failed))


def _run_boards(devices, boards_dir, scenario, runtime, heap, certs_dir, config_path, state_path, headless,
                seconds, stop, hist, say, ota_after=None):
    say(f"starting {devices} virtual boards (scenario {scenario}, {runtime} runtime"
        + (f", {heap} B heap)..." if heap else ")..."))
    boards = start_boards(devices, boards_dir, thing_prefix=THING_PREFIX, scenario=scenario,
                          runtime=runtime, heap=heap)
    try:
        ota_key = ota_pub = None
        if ota_after is not None:
            from host_tools.cloud import ota
            ota_key, ota_pub = ota.keygen(config_path.parent / "ota", force=True)
        _inject(boards, scenario, certs_dir, config_path, ota_pub, stop, say)
        boot_boards(boards, say, stop.open_link)
        stop.running = True  # from here Ctrl-C ends the demo the normal way
        if stop.is_set():
            return
        if ota_after is not None:
            threading.Thread(target=ota_rollout, daemon=True,
                             args=(state_path, [b.thing for b in boards], ota_key, config_path.parent, stop,
                                   say, ota_after)).start()
        if headless:
            say(f"demo running headless; `edgeshadow monitor --once --json --broker-state "
                f"{state_path}` shows the fleet; Ctrl-C or SIGTERM stops it")
            deadline = None if seconds is None else time.monotonic() + seconds
            while not stop.wait(0.5):
                hist.check()
                if deadline is not None and time.monotonic() > deadline:
                    break
        else:
            from host_tools.cloud import monitor
            settings = monitor.local_settings(state_file=state_path)
            monitor.watch_live(settings, seconds=seconds,
                               until=lambda fleet: stop.is_set() or hist.failure is not None)
            hist.check()
    finally:
        say("stopping the virtual boards, the historian, the dashboard, the shadow service and Mosquitto...")
        stop_boards(boards)
