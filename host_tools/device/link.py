"""BoardLink: one connection to a board (real on USB, or virtual) for a whole command.

On mpremote's SerialTransport: raw REPL, raw-paste and the file operations are mpremote's (fs_listdir,
stat, readfile, writefile, mkdir, rmdir, rmfile, hashfile). By hand, because mpremote does not do it:
write_file_atomic (temp name, SHA-256, rename: mpremote writes in place, has no rename), and, in
device/takeover.py, taking a board over (Ctrl-C pressed until the raw REPL answers; "no answer"
after NO_ANSWER_S of silence), soft_reset through the friendly REPL so main.py runs, and
wait_started (the application's announcement, device/console.py). Errors reach callers as
EdgeshadowError, one sentence naming the port or the board's exception.
"""
import ast
import contextlib
import errno
import hashlib
import os

from host_tools.device.takeover import (  # noqa: F401 (NoAnswer, NO_ANSWER_S: re-exported)
    NO_ANSWER_S, SERIAL_TIMEOUT_S, NoAnswer, TakeoverMixin, _last_line, _reason)
from host_tools.errors import EXIT_UNTESTED, EdgeshadowError
from host_tools.locks import port_lock

CHUNK = 2048          # bytes of file data per exec (mpremote sends them as a bytes literal)
_FS_WORDS = {errno.ENOENT: "no such file or folder", errno.EEXIST: "already exists",
             errno.ENOTDIR: "not a folder", errno.EISDIR: "is a folder",
             errno.ENOTEMPTY: "folder not empty", errno.EACCES: "permission denied",
             errno.EPERM: "not permitted", errno.ENOSPC: "the board's filesystem is full"}
_HINT = "check the cable, or run `edgeshadow sim` for a virtual board and use its port"


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


class BoardLink(TakeoverMixin):
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

    def _transport(self):
        if self.transport is None:
            raise EdgeshadowError(f"the link to {self.port} is closed")
        return self.transport

