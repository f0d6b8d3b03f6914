"""Put a thing's certificates and identity on a board: `edgeshadow inject`.

Everything is decided on the host before a board is touched: `certs.check` passes, the three files
convert to DER, the config is valid JSON, the port exists. Then, over ONE BoardLink per board:
each file is written under a staging name (`write_file_atomic`: temporary name, SHA-256 read-back,
rename), the staged set is renamed over the live files in one board-side step, and each live file
is read back by SHA-256 once more. A failure before that step leaves the board's previous files as
they were (the staged files are removed). Key bytes are never printed, only sizes.

The config the board will run (the given one, or the board's own, with the thing and certificate
paths merged in) passes the one validator (board_check.validate_config) before anything is written.
`check_connect()` then has the board open a TLS connection to `mqtt.endpoint:mqtt.port` with the
new files, and turns the outcome into one line. Last, the board is soft-reset and inject waits for
the application to announce that it runs with the new config (or fails with the board's reason).
"""
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.cloud import certs
from host_tools.device.board_check import read_config_file, validate_config
from host_tools.device.connect_check import check_connect, tls_error_words  # noqa: F401 (re-exported)
from host_tools.errors import EdgeshadowError

BOARD_CA, BOARD_CERT, BOARD_KEY = "/certs/root-ca.der", "/certs/device.der", "/certs/device.key.der"
BOARD_CONFIG = "/config.json"
STAGE = ".new"


@dataclass
class Plan:
    """What will be written to one board; made (and checked) before any board is opened."""
    thing: str
    port: str
    files: dict                # board path -> bytes (certificates, key), in writing order
    config: dict = None        # the given config, or None: merge into the board's own
    defaults: dict = field(default_factory=dict)  # certs/<thing>/config.json (endpoint from provision)
    report: object = None      # certs.CheckReport
    config_path: str = None    # where the given config came from (named in errors)
    endpoint: dict = None      # {"endpoint", "port"} that wins over the config's (--local-broker)


@dataclass
class Result:
    thing: str
    port: str
    ok: bool
    detail: str
    connect: str = ""          # the --check-connect line, if asked
    app: dict = None           # what the application announced after the reset (version, thing, config)
    exit_code: int = 0         # of the failure: 1, or 3 when no board answered (nothing was judged)

    def as_dict(self):
        return {"thing": self.thing, "port": self.port, "ok": self.ok, "detail": self.detail,
                "connect": self.connect or None, "running": self.app}


def _read_json(path, what):
    doc = read_config_file(path)
    if not isinstance(doc, dict):
        raise EdgeshadowError(f"{what} {path} must hold a JSON object")
    return doc


def check_port(port):
    """Catch an unknown port on the host, where the message can be clear."""
    if port.startswith("/") and not os.path.exists(port):
        raise EdgeshadowError(f"serial port {port} does not exist; is the board plugged in? "
                              "(`ls /dev/ttyUSB* /dev/ttyACM*` lists serial ports)")


def prepare(thing, port, certs_dir, config=None, root_ca=None, now=None, ota_key=None, endpoint=None):
    """Check everything for one board; raise EdgeshadowError (nothing touched) on any problem.
    endpoint: {"endpoint": host, "port": n} the board connects to, over what the config says
    (the local broker's, from its broker.json)."""
    certs.validate_thing(thing)
    thing_dir = Path(certs_dir) / thing
    report = certs.check(thing, thing_dir, root_ca=root_ca, now=now)
    root = Path(root_ca) if root_ca else thing_dir / certs.ROOT_CA
    files = {BOARD_CERT: certs.to_der(thing_dir / certs.DEVICE_CRT),
             BOARD_KEY: certs.to_der(thing_dir / certs.DEVICE_KEY),
             BOARD_CA: certs.to_der(root)}
    if ota_key:  # the update-signing public key (`edgeshadow ota keygen`), as the board reads it
        from host_tools.cloud import ota
        files[ota.BOARD_PUBKEY] = ota.board_pubkey(ota_key)
    given = _read_json(config, "config") if config else None
    defaults = _read_json(thing_dir / "config.json", "config") if (thing_dir / "config.json").exists() else {}
    if given is not None:  # what the board will run, checked now; the board's own is checked once read
        validate_config(merge_config(given, thing, defaults, endpoint), where=str(config))
    check_port(port)
    return Plan(thing, port, files, given, defaults, report, str(config) if config else None, endpoint)


def merge_config(base, thing, defaults=None, endpoint=None):
    """The board's config after injection: base with the thing name, the certificate paths and
    the endpoint: `endpoint` when given, else, if base has none, the one in certs/<thing>/config.json
    (written by provision)."""
    cfg = json.loads(json.dumps(base or {}))
    if not isinstance(cfg, dict):
        raise EdgeshadowError("the board's /config.json does not hold a JSON object; pass --config FILE")
    cfg["thing"] = thing
    mqtt = cfg.get("mqtt")
    if not isinstance(mqtt, dict):
        mqtt = cfg["mqtt"] = {}
    dm = endpoint or (defaults or {}).get("mqtt") or {}
    if dm.get("endpoint") and (endpoint or not mqtt.get("endpoint")):
        mqtt["endpoint"] = dm["endpoint"]
        if dm.get("port"):
            mqtt["port"] = dm["port"]
    mqtt.update(ca=BOARD_CA, cert=BOARD_CERT, key=BOARD_KEY)
    return cfg


def _board_config(link):
    raw = link.read_file(BOARD_CONFIG) if link.sha256(BOARD_CONFIG) else None
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise EdgeshadowError(f"the board's {BOARD_CONFIG} is not valid JSON; pass --config FILE to "
                              "replace it") from None


_COMMIT = """import os
try:
    os.mkdir('/certs')
except OSError:
    pass
for p in {paths!r}:
    os.rename(p + {stage!r}, p)
print('committed')
"""
_CLEAN = """import os
for p in {paths!r}:
    try:
        os.remove(p + {stage!r})
    except OSError:
        pass
"""


def inject(link, plan, progress=None):
    """Write the plan's files and config through an open BoardLink; return the config written.
    The config is checked (with the board's own /board.json) before anything is written."""
    from host_tools.device.deploy import board_on_device, choose_board
    say = progress or (lambda msg: None)
    where = "the board's /config.json" if plan.config is None else plan.config_path or "config"
    config = merge_config(plan.config if plan.config is not None else _board_config(link),
                          plan.thing, plan.defaults, plan.endpoint)
    try:
        validate_config(config, where=where)
        choose_board(None, config, where, board_on_device(link), link.port)
    except EdgeshadowError as e:
        msg = e.args[0]
        raise EdgeshadowError(msg if "nothing was written" in msg else f"{msg}; nothing was written",
                              hint=e.hint or ("pass --config FILE with a whole device config"
                                              if plan.config is None else None)) from None
    files = dict(plan.files)
    files[BOARD_CONFIG] = (json.dumps(config, indent=1) + "\n").encode()
    paths = list(files)
    link.mkdir("/certs")
    try:
        for path in paths:
            link.write_file_atomic(path + STAGE, files[path])
            say(f"staged {path} ({len(files[path])} bytes, sha256 verified)")
    except BaseException:
        try:
            link.exec(_CLEAN.format(paths=paths, stage=STAGE))
        except Exception:
            pass  # the board went away; the staged names are harmless, the live files untouched
        raise
    out = link.exec(_COMMIT.format(paths=paths, stage=STAGE))
    if "committed" not in out:
        raise EdgeshadowError(f"the board did not confirm renaming the new files into place ({out.strip()!r})")
    bad = [p for p in paths if link.sha256(p) != hashlib.sha256(files[p]).hexdigest()]
    if bad:
        raise EdgeshadowError(f"read-back check failed on the board for {', '.join(bad)}; run inject again")
    say(f"wrote {', '.join(paths)}; every file read back with a matching SHA-256")
    return config


def start(link, config, progress=None, timeout=30):
    """Soft-reset the board and wait until its application announces that it runs with `config`
    (as inject wrote it). Returns what it announced, or None when the board has no firmware yet
    (nothing to start: `edgeshadow deploy` will). Fails with the board's own reason."""
    if link.sha256("/main.py") is None:
        return None
    (progress or (lambda msg: None))("soft reset, waiting for the application to announce that it runs ...")
    link.soft_reset()
    app = link.wait_started(timeout=timeout)
    want = hashlib.sha256((json.dumps(config, indent=1) + "\n").encode()).hexdigest()
    if app["thing"] != config["thing"] or not want.startswith(app["config"]):
        raise EdgeshadowError(f"the board's application runs as thing={app['thing']} with config "
                              f"{app['config']}, not the one just injected ({config['thing']}, {want[:12]})")
    return app


# -- several boards -------------------------------------------------------------------------------

def _default_link(port):
    from host_tools.device.link import BoardLink
    return BoardLink(port)


def inject_boards(pairs, certs_dir, config=None, root_ca=None, connect=False, progress=None,
                  link_factory=None, ota_key=None, on_board=None, endpoint=None):
    """Inject (port, thing) pairs. Every pair is checked before any board is opened; then one
    connection per board, and a board's failure does not stop the others. on_board(result) is
    called as each board is done (a progress bar)."""
    problems, plans = [], []
    ports = [p for p, _ in pairs]
    dup = sorted({p for p in ports if ports.count(p) > 1})
    if dup:
        raise EdgeshadowError(f"port {dup[0]} is given twice; one thing per board")
    for port, thing in pairs:
        try:
            plans.append(prepare(thing, port, certs_dir, config=config, root_ca=root_ca, ota_key=ota_key,
                                 endpoint=endpoint))
        except EdgeshadowError as e:
            problems.append(f"{thing} ({port}): {e}")
    if problems:
        raise EdgeshadowError("nothing was written to any board: " + " | ".join(problems))
    results = []
    for plan in plans:
        say = (lambda msg, p=plan: progress(f"{p.thing} -> {p.port}: {msg}")) if progress else None
        results.append(_one_board(plan, link_factory or _default_link, connect, say))
        if on_board:
            on_board(results[-1])
    return results


def _one_board(plan, open_link, connect, say):
    t0 = time.monotonic()
    try:
        with open_link(plan.port) as link:
            cfg = inject(link, plan, progress=say)
            r = Result(plan.thing, plan.port, True, f"injected in {time.monotonic() - t0:.1f} s")
            if connect:
                r.ok, r.connect = check_connect(link, cfg)
            r.app = start(link, cfg, progress=say)
            r.detail = (f"injected and running (v{r.app['version']}, config {r.app['config']}) in "
                        f"{time.monotonic() - t0:.1f} s" if r.app else
                        f"injected in {time.monotonic() - t0:.1f} s; not started: the board has no "
                        f"firmware yet (`edgeshadow deploy` starts it)")
            return r
    except EdgeshadowError as e:
        return Result(plan.thing, plan.port, False, str(e), exit_code=e.exit_code)
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        return Result(plan.thing, plan.port, False, f"cannot use {plan.port}: {e.strerror or e}",
                      exit_code=1)
