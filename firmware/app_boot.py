# The application's start: /board.json and /config.json read and checked, the App made, and the
# stable line the host tools wait for. Run once per boot by app.main(), then unloaded: none of
# this code stays in RAM while the application runs.
import json

from app import App, BOARD_PATH, CONFIG_PATH, _CHECKS, log
from compat import unload
from edge import VERSION


def read_json(path):
    with open(path) as f:
        return json.load(f)


def config_id(path=CONFIG_PATH):
    """First 12 hex digits of the file's SHA-256: which config the application runs with."""
    import hashlib
    from binascii import hexlify
    h = hashlib.sha256()
    b = bytearray(256)
    with open(path, "rb") as f:
        n = f.readinto(b)
        while n:
            h.update(memoryview(b)[:n])
            n = f.readinto(b)
    return hexlify(h.digest())[:12].decode()


def _checked_config():
    """The config from /config.json, or None when it is not usable. A function of its own so that
    nothing of the config checks outlives it: a name bound to edge.config's `load` would keep that
    module (about 11 KB) in RAM for good after unload()."""
    from edge.config import ConfigError, load
    try:
        return load(read_json(CONFIG_PATH))
    except (OSError, ValueError) as e:
        problems = e.problems if isinstance(e, ConfigError) else [repr(e)]
        log("config: %s is not usable: %s" % (CONFIG_PATH, "; ".join(problems)))
        log("config: fix it with `edgeshadow deploy --config` or `edgeshadow inject`")
        # The stable line the host tools read after a reset (host_tools/device/console.py).
        print("edgeshadow: config-error %s: %s" % (CONFIG_PATH, "; ".join(problems)))
        return None
    finally:
        unload(*_CHECKS)  # checked once at boot and on each delta: not kept in RAM between


def configured_app():
    """The App for /board.json and /config.json, or None when the config is not usable."""
    try:
        board_def = read_json(BOARD_PATH)
    except (OSError, ValueError) as e:
        board_def = {}
        log("board: %s unreadable (%r): using the config's sensors only" % (BOARD_PATH, e))
    cfg = _checked_config()
    if cfg is None:
        return None
    # The code a delta loads, loaded once now and dropped: the names it holds (qstrs, which
    # MicroPython never frees) are made now, in a heap not yet fragmented, not at the first delta.
    import app_delta, edge.delta, edge.text  # noqa: E401,F401
    del app_delta, edge
    unload("app_delta", *_CHECKS)
    log("edgeshadow %s: thing %s, interval %s s" % (VERSION, cfg["thing"], cfg["interval_s"]))
    app = App(cfg, board_def)
    # The application started with this config: the stable line deploy and inject wait for.
    print("edgeshadow: running v%s thing=%s config=%s" % (VERSION, cfg["thing"], config_id()))
    return app
