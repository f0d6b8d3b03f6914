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


@dataclass
class Result:
    thing: str
    port: str
    ok: bool
    detail: str
    connect: str = ""          # the --check-connect line, if asked
    app: dict = None           # what the application announced after the reset (version, thing, config)

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


def prepare(thing, port, certs_dir, config=None, root_ca=None, now=None, ota_key=None):
    """Check everything for one board; raise EdgeshadowError (nothing touched) on any problem."""
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
        validate_config(merge_config(given, thing, defaults), where=str(config))
    check_port(port)
    return Plan(thing, port, files, given, defaults, report)


def merge_config(base, thing, defaults=None):
    """The board's config after injection: base with the thing name, the certificate paths and,
    if base has none, the endpoint from certs/<thing>/config.json (written by provision)."""
    cfg = json.loads(json.dumps(base or {}))
    if not isinstance(cfg, dict):
        raise EdgeshadowError("the board's /config.json does not hold a JSON object; pass --config FILE")
    cfg["thing"] = thing
    mqtt = cfg.get("mqtt")
    if not isinstance(mqtt, dict):
        mqtt = cfg["mqtt"] = {}
    dm = (defaults or {}).get("mqtt") or {}
    if not mqtt.get("endpoint") and dm.get("endpoint"):
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
    where = "the board's /config.json" if plan.config is None else "config"
    config = merge_config(plan.config if plan.config is not None else _board_config(link),
                          plan.thing, plan.defaults)
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


# -- --check-connect ------------------------------------------------------------------------------

_CONNECT = """import json, socket, ssl, time
def _rd(p):
    f = open(p, 'rb'); d = f.read(); f.close(); return d
def _check():
    cfg = json.loads(_rd('/config.json'))
    m = cfg.get('mqtt') or {}
    host, port = m.get('endpoint'), m.get('port') or 8883
    if not host:
        return 'no-endpoint'
    try:
        import network
        w = network.WLAN(network.STA_IF)
        if not w.isconnected():
            wifi = cfg.get('wifi') or {}
            w.active(True)
            w.connect(wifi.get('ssid') or '', wifi.get('password') or '')
            t0 = time.ticks_ms()
            while not w.isconnected():
                if time.ticks_diff(time.ticks_ms(), t0) > 15000:
                    return 'no-network'
                time.sleep_ms(100)
    except ImportError:
        pass
    if time.gmtime()[0] < 2024:
        try:
            import ntptime
            ntptime.settime()
        except Exception:
            return 'no-clock'
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # the unix port's default is CERT_NONE despite the name
    ctx.load_cert_chain(_rd(m.get('cert', '/certs/device.der')), _rd(m.get('key', '/certs/device.key.der')))
    ctx.load_verify_locations(cadata=_rd(m.get('ca', '/certs/root-ca.der')))
    s = socket.socket()
    try:
        s.settimeout({timeout})
        s.connect(socket.getaddrinfo(host, port)[0][-1])
        t0 = time.ticks_ms()
        t = ctx.wrap_socket(s, server_hostname=host)
        ms = time.ticks_diff(time.ticks_ms(), t0)
        t.close()
        return 'ok %d' % ms
    finally:
        s.close()
try:
    print('CHECK', _check())
except Exception as e:
    print('CHECK error', repr(e))
"""

# mbedTLS and socket errors as MicroPython raises them, in words.
_TLS_WORDS = [
    ("not correctly signed by the trusted CA", "the server's certificate is not signed by "
                                               "/certs/root-ca.der (wrong root CA for this endpoint?)"),
    ("CN mismatch", "the server's certificate is not for this host name (check mqtt.endpoint)"),
    ("has expired", "a certificate in the chain has expired (or the board's clock is wrong)"),
    ("future validity", "a certificate is not valid yet (is the board's clock set?)"),
    ("X509_CERT_VERIFY_FAILED", "the server's certificate is not trusted by /certs/root-ca.der or is "
                                "not for this host name (wrong root CA for this endpoint?)"),
    ("-9984", "the server's certificate is not trusted by /certs/root-ca.der or is not for this host name"),
    ("FATAL_ALERT", "the server refused the handshake: it does not accept this device certificate "
                    "(not registered, not active, or from another CA)"),
    ("-30592", "the server refused the handshake: it does not accept this device certificate"),
    ("CONN_EOF", "the server closed the connection during the handshake (device certificate refused?)"),
    ("-29312", "the server closed the connection during the handshake (device certificate refused?)"),
    ("ALLOC_FAILED", "the board ran out of memory for TLS (free heap before connecting; prefer EC keys)"),
    ("-32512", "the board ran out of memory for TLS"),
    ("-17040", "the board ran out of memory for the RSA key (use an EC P-256 key)"),
    ("-17168", "the board ran out of memory for the RSA key (use an EC P-256 key)"),
    ("-2880", "the board ran out of memory parsing a certificate"),
    ("PK_KEY_INVALID", "the board's TLS rejected /certs/device.key.der (damaged key file)"),
    ("X509_INVALID", "the board's TLS rejected a certificate file as damaged"),
    ("EPIPE", "the server closed the connection during the handshake (device certificate refused?)"),
    ("(32,", "the server closed the connection during the handshake (device certificate refused?)"),
    ("ECONNRESET", "the server reset the connection during the handshake (device certificate refused?)"),
    ("(104,", "the server reset the connection during the handshake (device certificate refused?)"),
    ("ECONNREFUSED", "nothing listens there (connection refused)"),
    ("(111,", "nothing listens there (connection refused)"),
    ("ETIMEDOUT", "no answer (timed out); is the endpoint reachable from the board's network?"),
    ("(110,", "no answer (timed out); is the endpoint reachable from the board's network?"),
    ("(116,", "no answer (timed out)"),
    ("EHOSTUNREACH", "the host is unreachable from the board's network"),
    ("(113,", "the host is unreachable from the board's network"),
    ("(-2,", "the endpoint's name does not resolve (check mqtt.endpoint and the board's DNS)"),
    ("(-202,", "the endpoint's name does not resolve (check mqtt.endpoint and the board's DNS)"),
]
_STATUS_WORDS = {
    "no-endpoint": "the config has no mqtt.endpoint; provision the thing or pass --config with one",
    "no-network": "the board did not get onto Wi-Fi within 15 s with the config's wifi.ssid/password",
    "no-clock": "the board's clock is not set and NTP failed; TLS would reject the certificate dates",
}


def tls_error_words(raw):
    for needle, words in _TLS_WORDS:
        if needle in raw:
            return words
    return "the TLS connection failed"


def check_connect(link, config, timeout_s=15):
    """(ok, one line) for a TLS connection from the board to its endpoint with its new files."""
    m = config.get("mqtt") or {}
    where = f"{m.get('endpoint')}:{m.get('port') or 8883}"
    out = link.exec(_CONNECT.replace("{timeout}", str(int(timeout_s))))
    line = next((ln for ln in out.splitlines() if ln.startswith("CHECK ")), "CHECK error no answer")
    status = line[len("CHECK "):].strip()
    if status.startswith("ok"):
        ms = status.split()[1] if len(status.split()) > 1 else "?"
        return True, f"TLS to {where}: ok (handshake {ms} ms)"
    if status in _STATUS_WORDS:
        return False, f"TLS to {where}: not tried: {_STATUS_WORDS[status]}"
    raw = " ".join(status.removeprefix("error").replace("\\n", " ").split())
    return False, f"TLS to {where} failed: {tls_error_words(raw)} [{raw}]"


# -- several boards -------------------------------------------------------------------------------

def _default_link(port):
    from host_tools.device.link import BoardLink
    return BoardLink(port)


def inject_boards(pairs, certs_dir, config=None, root_ca=None, connect=False, progress=None,
                  link_factory=None, ota_key=None, on_board=None):
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
            plans.append(prepare(thing, port, certs_dir, config=config, root_ca=root_ca, ota_key=ota_key))
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
        return Result(plan.thing, plan.port, False, str(e))
    except OSError as e:  # a port that vanished or is busy, below BoardLink's own errors
        return Result(plan.thing, plan.port, False, f"cannot use {plan.port}: {e.strerror or e}")
