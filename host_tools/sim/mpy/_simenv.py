# Shared by the virtual board's stand-ins: where the board's host-side state lives, and the channel
# to the supervisor. Messages travel on stdout as an OSC escape the supervisor strips, so they work
# after the root is remounted on the flash folder (host paths are gone then) and cost one write.
import os
import sys

SIM_DIR = os.getenv("EDGESHADOW_SIM_DIR") or "."
MODE = os.getenv("EDGESHADOW_SIM_MODE") or "friendly"

_PREFIX = "\x1b]edgeshadow-sim;"


def tell(message):
    """Send one message to the supervisor (ready, wdt=<ms>, ...)."""
    sys.stdout.write(_PREFIX + message + "\x07")


def read_text(name, default=""):
    """A file of sim/, read at import (before the remount hides host paths)."""
    try:
        with open(SIM_DIR + "/" + name) as f:
            return f.read().strip()
    except OSError:
        return default


def flag(name):
    """A test switch: sim/flags holds one name a line (e.g. ntp_fail)."""
    return name in FLAGS


FLAGS = read_text("flags").split()
