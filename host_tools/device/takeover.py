"""Taking a board over and resetting it: the part of BoardLink mpremote does not do.

Ctrl-C pressed until the raw REPL answers ("no answer" after NO_ANSWER_S of silence), then a soft
reset in the raw REPL so the host's scripts get a clean heap; soft_reset through the friendly REPL so
main.py runs; wait_started for the application's announcement (device/console.py). TakeoverMixin
is BoardLink's (device/link.py): it uses the link's port, answer_timeout, counter (the counting
serial port) and _transport().
"""
import contextlib
import io
import time

from host_tools.device.console import BANNER_RE, banner_line_end, start_outcome
from host_tools.errors import EXIT_UNTESTED, EdgeshadowError

SERIAL_TIMEOUT_S = 2  # pyserial read timeout; mpremote's own per-read timeouts sit on top
NO_ANSWER_S = 5       # a port from which not one byte comes back within this is "no answer"
QUIET = ("is it the board's port, powered, not held by another program? a board busy in a TLS "
         "handshake answers within 8 s: retry")


class NoAnswer(EdgeshadowError):
    """Not one byte back from the port: no board there, or one that is off or wedged."""


class TakeoverMixin:
    def interrupt(self):
        """Stop whatever runs (main.py) with Ctrl-C and hold the board in the raw REPL."""
        t = self._transport()
        port = self.counter._serial
        port.timeout = 0.2  # mpremote reads a pty byte by byte: a read may block this long, not 2 s
        try:
            self._press_until_raw(t)
        finally:
            port.timeout = SERIAL_TIMEOUT_S
        self._restart_raw(t)

    def _restart_raw(self, t, timeout=20):
        """A soft reset from the raw REPL: the board restarts without running main.py (as mpremote
        does on connecting), so what the host runs next has the whole heap, as after power-on. A
        stopped application leaves its names and fragments behind: on an ESP32's 112 KB the host's
        scripts then ran out of memory."""
        t.serial.write(b"\x04")
        for ending in (b"soft reboot\r\n", b"raw REPL; CTRL-B to exit\r\n"):
            if not t.read_until(1, ending, timeout=timeout).endswith(ending):
                t.in_raw_repl = False
                raise EdgeshadowError(f"the board on {self.port} did not come back from a soft reset "
                                      f"within {timeout} s", hint=QUIET)

    def _press_until_raw(self, t):
        # Ctrl-C can land where the firmware cannot take it (inside an import, an `except
        # ImportError` fallback); press it again, as a user would, until the raw REPL answers.
        start, rx0, presses = time.monotonic(), self.counter.rx, 0
        quiet_limit = min(NO_ANSWER_S, self.answer_timeout)
        while True:
            limit = quiet_limit if self.counter.rx == rx0 else self.answer_timeout
            try:
                presses += 1
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
                    left = limit - (time.monotonic() - start)
                    t.enter_raw_repl(soft_reset=False, timeout_overall=max(0.2, min(1.0, left)))
                if presses > 1:
                    self._settle(t)
                return
            except Exception as e:
                elapsed = time.monotonic() - start
                if self.counter.rx == rx0 and elapsed >= quiet_limit:
                    raise NoAnswer(f"no answer from the board on {self.port} within {quiet_limit} s "
                                   "(nothing came back to Ctrl-C)", hint=QUIET,
                                   exit_code=EXIT_UNTESTED) from None
                if elapsed >= self.answer_timeout:
                    raise EdgeshadowError(f"the board on {self.port} did not answer ({_reason(e)})",
                                          hint="press its reset button or power-cycle it, then retry")

    def _settle(self, t, quiet_s=0.3, max_s=3.0):
        """After more than one press of Ctrl-C and Ctrl-A, a board that was busy (booting, or
        reset by its watchdog) can still answer the earlier ones: a second "raw REPL" banner
        would then be read as the answer to the next command. Wait until the board has been
        quiet for quiet_s, drop what it said, and ask for the raw REPL prompt once more."""
        s = t.serial
        end = time.monotonic() + max_s
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet_s:
            n = s.in_waiting
            if n:
                s.read(n)
                last = time.monotonic()
            else:
                time.sleep(0.02)
        s.write(b"\r\x01")  # Ctrl-A in the raw REPL: its banner and prompt again
        if not t.read_until(1, b"raw REPL; CTRL-B to exit\r\n", timeout=1).endswith(
                b"raw REPL; CTRL-B to exit\r\n"):
            t.in_raw_repl = False
            raise EdgeshadowError(f"the board on {self.port} left the raw REPL")

    # -- resets ---------------------------------------------------------------------------------
    def soft_reset(self, timeout=20):
        """Soft-reset from the friendly REPL, so boot.py and main.py run as after power-on.
        Returns the boot output up to and including the firmware's banner line, which is also
        parsed into self.banner ({"version", "thing"})."""
        t = self._raw()
        try:
            t.exit_raw_repl()
            t.read_until(1, b">>> ", timeout=5)
            t.serial.write(b"\x04")
            text = self._read_console(banner_line_end, timeout)
        except EdgeshadowError:
            raise
        except Exception as e:
            raise EdgeshadowError(f"the board on {self.port} did not answer ({_reason(e)})",
                                  hint="press its reset button or power-cycle it, then retry")
        end = banner_line_end(text)
        if end is None:
            raise EdgeshadowError(f"no firmware banner from the board on {self.port} within {timeout} s "
                                  f"after a soft reset; it printed: {text[-200:]!r}",
                                  hint="deploy the firmware with `edgeshadow deploy`")
        self.banner = BANNER_RE.search(text).groupdict()
        self._after_banner = text[end:]
        return text[:end]

    def wait_started(self, timeout=30):
        """After soft_reset(): read the console until the application announces itself. Returns
        {"version", "thing", "config"} (config: the first 12 hex digits of the SHA-256 of the
        /config.json it runs with); raises EdgeshadowError with the board's own reason when it
        refuses its config, has no application, or stops with an error."""
        text = self._read_console(start_outcome, timeout, getattr(self, "_after_banner", ""))
        self._after_banner = ""
        outcome = start_outcome(text)
        if outcome is None:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise EdgeshadowError(f"the application on {self.port} did not announce itself within "
                                  f"{timeout} s after booting (it printed: {tail or 'nothing'})")
        if outcome[0] == "running":
            return outcome[1]
        raise EdgeshadowError(f"the board on {self.port} did not start its application: {outcome[1]}")

    def _read_console(self, done, timeout, text=""):
        """What the board prints (decoded), until done(text) or timeout."""
        s, deadline = self._transport().serial, time.monotonic() + timeout
        while done(text) is None and time.monotonic() < deadline:
            n = s.in_waiting
            if n:
                text += s.read(n).decode("utf-8", "replace")
            else:
                time.sleep(0.01)
        return text


def _last_line(err):
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "an error"


def _reason(e):
    text = str(e) or e.__class__.__name__
    return text.splitlines()[0]
