"""The virtual board on the ESP32-like runtime as mpremote sees it: the firmware's application
running (main.py in its asyncio loop), and mpremote's usual "\\r\\x03\\r\\x01" in one write.

The unix port flushes typed-ahead input each time its REPL switches the terminal to raw mode, so
the Ctrl-A that follows the Ctrl-C was lost and mpremote waited forever; a board's UART keeps it.
The runtime is built to keep it too (host_tools/sim/esp32like/uart_noflush.c).

A Ctrl-C is a KeyboardInterrupt the VM raises at its next check, as the ESP32's UART interrupt
schedules it; the unix port longjmps out of its signal handler, which can leave the heap locked
(host_tools/sim/esp32like/kbd_sched.c)."""
import os
import random
import signal
import subprocess
import time

import pytest

from host_tools.sim import runtimes
from tests.host.conftest import MPREMOTE

pytestmark = pytest.mark.skipif(not runtimes.available("esp32like"),
                                reason="the ESP32-like runtime is not built (`make esp32like`)")


def test_mpremote_exec_interrupts_the_running_app_and_answers(virtual_board):
    vb = virtual_board("esp-001", runtime="esp32like")
    vb.wait_for_log("edgeshadow 0.1.0: thing esp-001", timeout=60)  # the application runs
    p = subprocess.run([MPREMOTE, "connect", vb.port, "exec", "print(6 * 7)"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "42", (p.stdout, p.stderr)
    assert "KeyboardInterrupt" in vb.log()  # it was the running app that mpremote interrupted


# Allocates and collects for good, saying "ready" each time it (re)enters its try block; the host
# interrupts it once per "ready", at a random moment of the churn (mostly inside gc.collect()).
# Every KeyboardInterrupt must be caught and the heap stay usable. On the unix port's build the
# interrupt longjmps out of gc.collect() and the next allocation fails with "memory allocation
# failed, heap is locked" (3 runs of 3).
_GC_UNDER_CTRL_C = """
import gc
hits = 0


def churn():
    print("ready")
    while True:
        x = [bytearray(64) for i in range(20)]
        d = {i: str(i) for i in range(30)}
        gc.collect()


while hits < %d:
    try:
        churn()
    except KeyboardInterrupt:
        hits += 1
print("survived", hits)
"""


def test_ctrl_c_inside_the_garbage_collector_leaves_the_heap_usable(tmp_path):
    interrupts = 300
    rnd = random.Random(3)
    script = tmp_path / "gc_loop.py"
    script.write_text(_GC_UNDER_CTRL_C % interrupts)
    p = subprocess.Popen([str(runtimes.path("esp32like")), "-X", "heapsize=200k", str(script)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(interrupts):
            line = p.stdout.readline()
            if line != b"ready\n":
                break
            time.sleep(rnd.random() * 0.003)  # a random moment in the churn, not a wait for anything
            os.kill(p.pid, signal.SIGINT)
        out = p.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and f"survived {interrupts}" in out, (p.returncode, out[-500:])
