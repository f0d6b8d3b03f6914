# The board's entry point: the version banner, then the supervisor in app.py (when deployed).
# A crash in the application prints its traceback and leaves the REPL reachable.
import sys

try:
    import edge
except Exception as e:  # an update on trial whose package is broken is rolled back
    import otaboot
    otaboot.crashed(e)
    raise


def _thing():
    try:
        import json
        with open("/config.json") as f:
            return json.load(f).get("thing") or "?"
    except Exception:
        return "?"


def _has_app():
    import os
    for name in ("/app.py", "/app.mpy", "/rom/app.mpy"):  # --mpy: compiled; --romfs: in ROMFS
        try:
            os.stat(name)
            return True
        except OSError:
            pass
    return False


def _release():
    """Once the application has stopped: its tasks and modules go, so the REPL and the host
    tools' scripts (bench, calibrate, deploy) get the heap back, as after a reset."""
    import gc
    try:
        import asyncio
        asyncio.new_event_loop()  # the stopped tasks (and all they hold) are dropped
    except Exception:
        pass
    globals().pop("app", None)
    from compat import unload
    unload(*[n for n in sys.modules if n.split(".")[0] in _FIRMWARE])
    gc.collect()


_FIRMWARE = ("app", "app_boot", "app_delta", "edge", "net", "store", "drivers", "board", "board_build", "compat", "ota", "otaboot")
print("edgeshadow firmware v%s thing=%s" % (edge.VERSION, _thing()))
del edge
if _has_app():
    try:
        import app
        app.main()
        _release()  # it returned (no usable config): the REPL gets the heap back all the same
    except KeyboardInterrupt:
        _release()
        raise
    except Exception as e:
        print("edgeshadow: the application stopped with an error; the REPL stays available")
        sys.print_exception(e)
        import otaboot
        otaboot.crashed(e)  # an update on trial is rolled back (and the board restarts)
        _release()
else:
    print("edgeshadow: no /app.py on this board yet; staying at the REPL")
del _thing, _has_app
