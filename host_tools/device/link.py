"""BoardLink: one connection to a board (real on USB, or virtual) for a whole command.

Built on mpremote's SerialTransport (raw REPL and raw-paste). Every host tool that touches a board
goes through it, so a deploy of 40 files is one connection, not 40 mpremote runs.

    with BoardLink("/dev/ttyUSB0") as link:
        link.write_file_atomic("/config.json", data)
        print(link.soft_reset())

Errors reach callers as EdgeshadowError, one sentence naming the port or the board's exception.
"""
import ast
import contextlib
import hashlib
import io
import os
import re
import time

from host_tools.errors import EdgeshadowError
from host_tools.locks import port_lock

BANNER_RE = re.compile(r"edgeshadow firmware v(?P<version>\S+) thing=(?P<thing>\S+)")
CHUNK = 3072          # bytes of file data per raw-paste exec (4 KB of base64)
SERIAL_TIMEOUT_S = 2  # pyserial read timeout; mpremote's own per-read timeouts sit on top


def _hint(port):
    return f"check the cable, or run `edgeshadow sim` for a virtual board and use its port"


def _q(s):
    return repr(str(s))


class _CountingSerial:
    """The pyserial port, counting the bytes written to the board."""

    def __init__(self, serial):
        self._serial = serial
        self.tx = 0

    def write(self, data):
        n = self._serial.write(data)
        self.tx += len(data)
        return n

    def __getattr__(self, name):
        return getattr(self._serial, name)


class BoardLink:
    def __init__(self, port, baud=115200, answer_timeout=10):
        """answer_timeout: seconds to wait for the REPL when taking over the board."""
        self.port = str(port)
        self.answer_timeout = answer_timeout
        self.banner = None  # {"version", "thing"} from the last soft_reset()
        if not os.path.exists(self.port):
            raise EdgeshadowError(f"could not open {self.port}: no such device", hint=_hint(port))
        self._port_lock = port_lock(self.port).acquire()  # one edgeshadow command per port
        try:
            from mpremote.transport_serial import SerialTransport
            self.transport = SerialTransport(self.port, baudrate=baud, timeout=SERIAL_TIMEOUT_S)
        except Exception as e:
            self._port_lock.release()
            raise EdgeshadowError(f"could not open {self.port}: {_reason(e)}", hint=_hint(port))
        self.transport.serial = self.counter = _CountingSerial(self.transport.serial)

    @property
    def bytes_out(self):
        """Bytes written to the board on this link so far (code, base64 data, control bytes)."""
        return self.counter.tx

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if getattr(self, "_port_lock", None):
            self._port_lock.release()
        t, self.transport = getattr(self, "transport", None), None
        if t is None:
            return
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
        except Exception:
            pass
        try:
            t.close()
        except Exception:
            pass

    # -- running code ---------------------------------------------------------------------------
    def interrupt(self):
        """Stop whatever runs (main.py) with Ctrl-C and hold the board in the raw REPL."""
        t = self._transport()
        # Ctrl-C can land where the firmware cannot take it (inside an import, an `except
        # ImportError` fallback); press it again, as a user would, until the raw REPL answers.
        deadline = time.monotonic() + self.answer_timeout
        presses = 0
        while True:
            left = deadline - time.monotonic()
            try:
                presses += 1
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
                    t.enter_raw_repl(soft_reset=False, timeout_overall=max(0.2, min(1.0, left)))
                if presses > 1:
                    self._settle(t)
                return
            except Exception as e:
                if time.monotonic() >= deadline:
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

    def exec(self, code, timeout=10):
        """Run code on the board; returns what it printed. A board exception -> EdgeshadowError."""
        t = self._transport()
        if not t.in_raw_repl:
            self.interrupt()
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

    # -- files ----------------------------------------------------------------------------------
    def ls(self, path="/"):
        """[(name, size, is_dir)] of a board folder, sorted by name."""
        code = ("import os\np=%s.rstrip('/') or '/'\nr=[]\n"
                "for e in os.ilistdir(p):\n"
                " d=e[1]&0x4000!=0\n s=0 if d else os.stat((p+'/' if p!='/' else p)+e[0])[6]\n"
                " r.append((e[0],s,d))\nprint(repr(r))" % _q(path))
        return self._fs(code, path, _listing)

    def read_file(self, path):
        code = ("import binascii\nwith open(%s,'rb') as f:\n while 1:\n  b=f.read(%d)\n"
                "  if not b:break\n  print(binascii.b2a_base64(b).decode(),end='')" % (_q(path), CHUNK))
        import binascii
        return self._fs(code, path, lambda out: binascii.a2b_base64("".join(out.split())))

    def sha256(self, path):
        """Hex SHA-256 of a board file, or None when it does not exist."""
        code = ("import hashlib,binascii\nh=hashlib.sha256()\nb=bytearray(1024)\n"
                "try:\n f=open(%s,'rb')\nexcept OSError:\n f=None\n print('None')\n"
                "if f:\n while 1:\n  n=f.readinto(b)\n  if not n:break\n  h.update(b[:n])\n"
                " f.close()\n print(binascii.hexlify(h.digest()).decode())" % _q(path))
        out = self.exec(code).strip()
        if out == "None":
            return None
        if len(out) != 64 or out.strip("0123456789abcdef"):
            raise EdgeshadowError(f"{path}: the board on {self.port} answered {out[:80]!r}, not a SHA-256")
        return out

    def mkdir(self, path, parents=True):
        code = ("import os\nparts=[x for x in %s.split('/') if x]\n"
                "todo=['/'+'/'.join(parts[:i+1]) for i in range(len(parts))] if %r else ['/'+'/'.join(parts)]\n"
                "for c in todo:\n try:\n  os.mkdir(c)\n except OSError as e:\n"
                "  if e.errno!=17:raise\n  if os.stat(c)[0]&0x4000==0:raise OSError(20)" % (_q(path), parents))
        self._fs(code, path)

    def remove(self, path):
        """Remove a file or an empty folder."""
        code = ("import os\np=%s\nif os.stat(p)[0]&0x4000:os.rmdir(p)\nelse:os.remove(p)" % _q(path))
        self._fs(code, path)

    def write_file_atomic(self, path, data):
        """Write path+'.tmp', check its SHA-256 on the board, then rename it over path. On any
        failure the temporary file is removed and the old file is left as it was."""
        data = bytes(data)
        path = str(path)
        parent = path.rsplit("/", 1)[0]
        if parent:
            self.mkdir(parent)
        tmp = path + ".tmp"
        import binascii
        try:
            self.exec("import binascii\n_f=open(%s,'wb')\n_w=_f.write\n_d=binascii.a2b_base64" % _q(tmp))
            for i in range(0, len(data), CHUNK):
                b64 = binascii.b2a_base64(data[i:i + CHUNK], newline=False).decode()
                self.exec("_w(_d(%r))" % b64)
            self.exec("_f.close()\ndel _f,_w,_d")
            want = hashlib.sha256(data).hexdigest()
            got = self.sha256(tmp)
            if got != want:
                raise EdgeshadowError(f"{path}: the copy on the board does not match "
                                      f"(SHA-256 {got} instead of {want}); the old file is unchanged")
            self.exec("import os\nos.rename(%s,%s)" % (_q(tmp), _q(path)))
        except BaseException:
            try:
                self.exec("import os\ntry:\n _f.close()\nexcept Exception:\n pass\n"
                          "try:\n os.remove(%s)\nexcept OSError:\n pass" % _q(tmp))
            except EdgeshadowError:
                pass
            raise

    # -- resets ---------------------------------------------------------------------------------
    def soft_reset(self, timeout=20):
        """Soft-reset from the friendly REPL, so boot.py and main.py run as after power-on.
        Returns the boot output up to and including the firmware's banner line, which is also
        parsed into self.banner ({"version", "thing"})."""
        t = self._transport()
        s = t.serial
        try:
            if not t.in_raw_repl:
                self.interrupt()
            t.exit_raw_repl()
            t.read_until(1, b">>> ", timeout=5)
            s.write(b"\x04")
            deadline = time.monotonic() + timeout
            out = b""
            while time.monotonic() < deadline:
                n = s.in_waiting
                if n:
                    out += s.read(n)
                    m = BANNER_RE.search(out.decode("utf-8", "replace"))
                    if m and b"\n" in out[out.find(b"edgeshadow firmware"):]:
                        self.banner = m.groupdict()
                        text = out.decode("utf-8", "replace")
                        return text[:text.index("\n", m.end()) + 1]
                else:
                    time.sleep(0.01)
        except EdgeshadowError:
            raise
        except Exception as e:
            raise EdgeshadowError(f"the board on {self.port} did not answer ({_reason(e)})",
                                  hint="press its reset button or power-cycle it, then retry")
        raise EdgeshadowError(f"no firmware banner from the board on {self.port} within {timeout} s "
                              f"after a soft reset; it printed: {out[-200:]!r}",
                              hint="deploy the firmware with `edgeshadow deploy`")

    # -- internals ------------------------------------------------------------------------------
    def _transport(self):
        if self.transport is None:
            raise EdgeshadowError(f"the link to {self.port} is closed")
        return self.transport

    def _fs(self, code, path, parse=None):
        try:
            out = self.exec(code)
        except EdgeshadowError as e:
            msg = str(e)
            for errno_, text in ((2, "no such file or folder"), (17, "already exists"),
                                 (20, "not a folder"), (21, "is a folder"), (39, "folder not empty"),
                                 (13, "permission denied"), (28, "the board's filesystem is full")):
                if f"[Errno {errno_}]" in msg or f"OSError: {errno_}" in msg:
                    raise EdgeshadowError(f"{path}: {text} on the board on {self.port}") from None
            raise
        if parse is None:
            return out
        try:
            return parse(out)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            raise EdgeshadowError(f"{path}: the board on {self.port} gave an answer that is not the "
                                  f"expected one: {out.strip()[:80]!r}") from None


def _listing(out):
    """ls's answer: a list of (name, size, is_dir), sorted; TypeError for anything else."""
    rows = ast.literal_eval(out)
    if not isinstance(rows, list) or not all(
            isinstance(r, tuple) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], int)
            and isinstance(r[2], bool) for r in rows):
        raise TypeError("not a listing")
    return sorted(rows)


def _last_line(err):
    lines = [l.strip() for l in err.decode("utf-8", "replace").splitlines() if l.strip()]
    return lines[-1] if lines else "an error"


def _reason(e):
    text = str(e) or e.__class__.__name__
    return text.splitlines()[0]
