"""BoardLink: one connection to a board (real on USB, or virtual) for a whole command.

On mpremote's SerialTransport: raw REPL, raw-paste and the file operations are mpremote's (fs_listdir,
stat, readfile, writefile, mkdir, rmdir, rmfile, hashfile). By hand, because mpremote does not do it:
taking a board over (Ctrl-C pressed until the raw REPL answers; "no answer" after NO_ANSWER_S of
silence), write_file_atomic (temp name, SHA-256, rename: mpremote writes in place, has no rename),
soft_reset through the friendly REPL so main.py runs, and wait_started (the application's
announcement, device/console.py). Errors reach callers as EdgeshadowError, one sentence naming the
port or the board's exception.
"""
import ast
import contextlib
import errno
import hashlib
import io
import os
import time

from host_tools.device.console import BANNER_RE, banner_line_end, start_outcome
from host_tools.errors import EXIT_UNTESTED, EdgeshadowError
from host_tools.locks import port_lock

CHUNK = 2048          # bytes of file data per exec (mpremote sends them as a bytes literal)
SERIAL_TIMEOUT_S = 2  # pyserial read timeout; mpremote's own per-read timeouts sit on top
NO_ANSWER_S = 5       # a port from which not one byte comes back within this is "no answer"
_FS_WORDS = {errno.ENOENT: "no such file or folder", errno.EEXIST: "already exists",
             errno.ENOTDIR: "not a folder", errno.EISDIR: "is a folder",
             errno.ENOTEMPTY: "folder not empty", errno.EACCES: "permission denied",
             errno.EPERM: "not permitted", errno.ENOSPC: "the board's filesystem is full"}
_HINT = "check the cable, or run `edgeshadow sim` for a virtual board and use its port"
_QUIET = ("is it the board's port, powered, not held by another program? a board busy in a TLS "
          "handshake answers within 8 s: retry")


class NoAnswer(EdgeshadowError):
    """Not one byte back from the port: no board there, or one that is off or wedged."""


class _CountingSerial:
    """The pyserial port, counting the bytes written to the board and read from it."""

    def __init__(self, serial):
        self._serial = serial
        self.tx = self.rx = 0

    def write(self, data):
        self.tx += len(data)
        return self._serial.write(data)

    def read(self, size=1):
        data = self._serial.read(size)
        self.rx += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._serial, name)


class BoardLink:
    def __init__(self, port, baud=115200, answer_timeout=10):
        """answer_timeout: seconds to wait for the REPL when taking over a board that answers."""
        self.port = str(port)
        self.answer_timeout = answer_timeout
        self.banner = None  # {"version", "thing"} from the last soft_reset()
        self._dirs = {"/"}  # folders known to exist on the board (mkdir asks once per link)
        if not os.path.exists(self.port):
            raise EdgeshadowError(f"could not open {self.port}: no such device", hint=_HINT,
                                  exit_code=EXIT_UNTESTED)
        self._port_lock = port_lock(self.port).acquire()  # one edgeshadow command per port
        try:
            from mpremote.transport_serial import SerialTransport
            self.transport = SerialTransport(self.port, baudrate=baud, timeout=SERIAL_TIMEOUT_S)
        except Exception as e:
            self._port_lock.release()
            raise EdgeshadowError(f"could not open {self.port}: {_reason(e)}", hint=_HINT,
                                  exit_code=EXIT_UNTESTED)
        self.transport.serial = self.counter = _CountingSerial(self.transport.serial)

    @property
    def bytes_out(self):
        """Bytes written to the board on this link so far (code, file data, control bytes)."""
        return self.counter.tx

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        lock, self._port_lock = getattr(self, "_port_lock", None), None
        t, self.transport = getattr(self, "transport", None), None
        if t is not None:
            with contextlib.suppress(Exception):
                if t.in_raw_repl:
                    t.exit_raw_repl()
            with contextlib.suppress(Exception):
                t.close()
        if lock:  # released once the port is closed: the next command finds it free
            lock.release()

    # -- running code ---------------------------------------------------------------------------
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
                                      f"within {timeout} s", hint=_QUIET)

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
                                   "(nothing came back to Ctrl-C)", hint=_QUIET,
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

    def _raw(self):
        """The transport, with the board held in the raw REPL."""
        t = self._transport()
        if not t.in_raw_repl:
            self.interrupt()
        return t

    def exec(self, code, timeout=10):
        """Run code on the board; returns what it printed. A board exception -> EdgeshadowError."""
        t = self._raw()
        try:
            out, err = t.exec_raw(code, timeout=timeout)
        except Exception as e:
            t.in_raw_repl = False  # resynchronise on the next call
            raise EdgeshadowError(f"the board on {self.port} did not answer ({_reason(e)})",
                                  hint="press its reset button or power-cycle it, then retry")
        if err:
            raise EdgeshadowError(f"the board on {self.port} raised {_last_line(err)}")
        return out.decode("utf-8", "replace")

    def eval(self, expr, timeout=10):
        out = self.exec("print(repr(%s))" % expr, timeout).strip()
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            raise EdgeshadowError(f"the board's answer to {expr!r} is not a Python literal: {out[:80]!r}")

    # -- files: mpremote's transport, its errors in words ---------------------------------------
    def _fs(self, path, op, *args, **kw):
        """Run mpremote's Transport.fs_<op>; OSError from the board -> "<path>: <words>"."""
        from mpremote.transport import TransportError, TransportExecError
        t = self._raw()
        try:
            return getattr(t, "fs_" + op)(*args, **kw)
        except TransportExecError as e:
            raise EdgeshadowError(f"{path}: the board on {self.port} raised "
                                  f"{_last_line(e.error_output.encode())}") from None
        except (TransportError, ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as e:
            # timeouts, and answers mpremote cannot parse (garbled on the line, or not a board's)
            t.in_raw_repl = False
            raise EdgeshadowError(f"{path}: the board on {self.port} did not answer as expected "
                                  f"({_reason(e)})", hint="retry; if it persists, reset the board") from None
        except OSError as e:
            if e.errno in _FS_WORDS:
                raise EdgeshadowError(f"{path}: {_FS_WORDS[e.errno]} on the board on {self.port}") from None
            t.in_raw_repl = False  # the port itself failed (unplugged, busy)
            raise EdgeshadowError(f"{path}: cannot use {self.port}: {_reason(e)}") from None

    def ls(self, path="/"):
        """[(name, size, is_dir)] of a board folder, sorted by name."""
        rows = []
        for e in self._fs(path, "listdir", path):
            if not (isinstance(e.name, str) and type(e.st_mode) is int and type(e.st_size) is int):
                raise EdgeshadowError(f"{path}: the board on {self.port} answered {e!r}, not a listing")
            is_dir = bool(e.st_mode & 0x4000)
            size = 0 if is_dir else e.st_size or self._size(path.rstrip("/") + "/" + e.name)
            rows.append((e.name, size, is_dir))
        return sorted(rows)

    def _size(self, path):  # the unix port's ilistdir gives no size
        size = self._fs(path, "stat", path).st_size
        if type(size) is not int:
            raise EdgeshadowError(f"{path}: the board on {self.port} answered a size of {size!r}")
        return size

    def read_file(self, path):
        return bytes(self._fs(path, "readfile", path, chunk_size=CHUNK))

    def sha256(self, path):
        """Hex SHA-256 of a board file, or None when it does not exist."""
        try:
            digest = self._fs(path, "hashfile", path, "sha256", chunk_size=CHUNK)
        except EdgeshadowError as e:
            if "no such file" in str(e):
                return None
            raise
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise EdgeshadowError(f"{path}: the board on {self.port} answered {str(digest)[:80]!r}, "
                                  f"not a SHA-256")
        return digest.hex()

    def mkdir(self, path):
        """Make a folder and its parents (each asked for once per link)."""
        parts = [p for p in str(path).split("/") if p]
        for folder in ("/" + "/".join(parts[:i + 1]) for i in range(len(parts))):
            if folder in self._dirs:
                continue
            try:
                self._fs(folder, "mkdir", folder)
            except EdgeshadowError as e:
                if "already exists" not in str(e):
                    raise
                if not self._fs(folder, "stat", folder).st_mode & 0x4000:
                    raise EdgeshadowError(f"{path}: {folder} is a file on the board on {self.port}") from None
            self._dirs.add(folder)

    def remove(self, path):
        """Remove a file or an empty folder."""
        path = str(path)
        is_dir = self._fs(path, "stat", path).st_mode & 0x4000
        self._fs(path, "rmdir" if is_dir else "rmfile", path)
        self._dirs = {d for d in self._dirs if d != path and not d.startswith(path + "/")}

    def write_file_atomic(self, path, data):
        """Write path+'.tmp', check its SHA-256 on the board, then rename it over path. On any
        failure the temporary file is removed and the old file is left as it was."""
        data = bytes(data)
        path = str(path)
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.mkdir(parent)
        tmp = path + ".tmp"
        try:
            self._fs(tmp, "writefile", tmp, data, chunk_size=CHUNK)
            want = hashlib.sha256(data).hexdigest()
            got = self.sha256(tmp)
            if got != want:
                raise EdgeshadowError(f"{path}: the copy on the board does not match "
                                      f"(SHA-256 {got} instead of {want}); the old file is unchanged")
            self.exec("import os\nos.rename(%r,%r)" % (tmp, path))
        except BaseException:
            with contextlib.suppress(EdgeshadowError):  # mpremote's fs_writefile leaves `f` open
                self.exec("import os\ntry:\n f.close()\nexcept Exception:\n pass\n"
                          "try:\n os.remove(%r)\nexcept OSError:\n pass" % tmp)
            raise

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

    def _transport(self):
        if self.transport is None:
            raise EdgeshadowError(f"the link to {self.port} is closed")
        return self.transport


def _last_line(err):
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "an error"


def _reason(e):
    text = str(e) or e.__class__.__name__
    return text.splitlines()[0]
