"""The virtual board on the ESP32-like runtime as mpremote sees it: the firmware's application
running (main.py in its asyncio loop), and mpremote's usual "\\r\\x03\\r\\x01" in one write.

The unix port flushes typed-ahead input each time its REPL switches the terminal to raw mode, so
the Ctrl-A that follows the Ctrl-C was lost and mpremote waited forever; a board's UART keeps it.
The runtime is built to keep it too (host_tools/sim/esp32like/uart_noflush.c)."""
import subprocess

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
