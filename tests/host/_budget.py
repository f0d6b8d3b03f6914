"""The whole firmware on a virtual board at a given GC heap, against the real local broker: boots,
connects over mutual TLS, samples, spools, reports its shadow, applies a delta, and runs on.
Used by the memory-budget test (tests/host/test_memory_budget.py) and `make perf`
(tests/perf/bench_memory.py)."""
import json
import re
import time
from pathlib import Path

from host_tools.cloud import certs
from host_tools.demo import device_config
from host_tools.device.inject import inject_boards
from host_tools.cloud.shadow_api import LocalShadow
from host_tools.sim.board import VirtualBoard

FAILURE_MARKS = ("MemoryError", "Traceback", "the application stopped", "not applied")
_APPLIED = re.compile(r"delta v\d+ applied")


def _wait(fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    return None


def run_firmware(workdir, broker, ca_dir, heap, seconds, runtime="esp32like", thing="grid-mem-001",
                 interval_s=1, scenario="smartgrid", romfs=0):
    """Run the firmware for `seconds` after it connected, with a delta applied on the way.
    Returns what happened: connected, delta applied, failures in the log, boots, the shadow's heap.
    romfs=0: the firmware on the filesystem; romfs="firmware": its modules in a ROMFS partition."""
    workdir = Path(workdir)
    certs.issue_device(thing, workdir / "certs" / thing, ca_dir)
    cfg = device_config(broker.port, interval_s)
    (workdir / "config.json").write_text(json.dumps(cfg))
    out = {"heap": heap, "connected": False, "delta_applied": False}
    crt, key = broker.client_cert("edgeshadow-admin")
    with VirtualBoard(workdir / "board", thing=thing, scenario=scenario, runtime=runtime,
                      heap=heap, romfs=romfs) as vb:
        [r] = inject_boards([(vb.port, thing)], workdir / "certs", config=workdir / "config.json")
        if not r.ok:
            raise RuntimeError(f"inject failed: {r.detail}")
        mark = vb.log().rindex("edgeshadow: running")  # inject soft-reset it and saw it start
        out["connected"] = bool(_wait(lambda: "net: connected" in vb.log()[mark:] or
                                      any(m in vb.log()[mark:] for m in FAILURE_MARKS), 60)) and \
            "net: connected" in vb.log()[mark:]
        with LocalShadow(broker.host, broker.port, broker.ca_cert, crt, key) as sh:
            if out["connected"]:
                sh.set_desired(thing, {"interval_s": interval_s + 1})
                out["delta_applied"] = bool(_wait(lambda: _APPLIED.search(vb.log()[mark:]), 30))
                if not out["delta_applied"]:
                    # seen on a loaded machine: a desired value set right after the connect was
                    # not applied within 30 s, with nothing logged (not diagnosed): ask again
                    out["delta_retried"] = True
                    sh.set_desired(thing, {"interval_s": interval_s + 2})
                    out["delta_applied"] = bool(_wait(lambda: _APPLIED.search(vb.log()[mark:]), 30))
                end = time.monotonic() + seconds
                while time.monotonic() < end and not any(m in vb.log()[mark:] for m in FAILURE_MARKS):
                    time.sleep(0.5)
            try:
                rep = sh.get(thing).get("state", {}).get("reported", {})
            except Exception:  # never reported: no shadow
                rep = {}
        log = vb.log()[mark:]
        out["failures"] = [line for line in log.splitlines() if any(m in line for m in FAILURE_MARKS)]
        # resets the board did by itself (watchdog, crash, machine.reset): the host's soft resets
        # print "soft reboot", a reset prints the ROM's "rst:" line
        out["reboots"] = log.count("\nrst:0x")
        out["shadow_heap"] = rep.get("heap")
        out["timestamp"] = rep.get("timestamp")
        out["log_tail"] = log[-1500:]
    out["ok"] = out["connected"] and out["delta_applied"] and not out["failures"] and out["reboots"] == 0
    return out
