"""One edgeshadow command at a time on a serial port or a board folder.

A lock is fcntl.flock on a small file holding the holder's PID and command. The kernel drops it
when the holder closes the file or its process ends in any way (killed, crashed), so a lock is
never left behind; a second command gets EdgeshadowError "... is in use by PID N (...)" with exit
code 3 (could not test). Locks are between edgeshadow commands (and library users): the virtual
board's supervisor, which holds its pty open all along, takes none.

    with port_lock("/dev/ttyUSB0"):          # lock file named from the port's real path
        ...
    with folder_lock(Path("run/sim/sim-001"), "board folder"):
        ...

Port locks live in $EDGESHADOW_LOCK_DIR or <tmp>/edgeshadow-locks (one folder for every user of the
machine, as the port is one); folder locks in the folder itself (.edgeshadow.lock).
"""
import fcntl
import os
import sys
import tempfile
from pathlib import Path

from host_tools.errors import EXIT_UNTESTED, EdgeshadowError

FOLDER_LOCK_NAME = ".edgeshadow.lock"


def lock_dir():
    return Path(os.environ.get("EDGESHADOW_LOCK_DIR") or Path(tempfile.gettempdir()) / "edgeshadow-locks")


def _command():
    """What holds the lock, for the other command's message: "edgeshadow logs", "pytest"."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("edgeshadow", "cli.py"):
        return " ".join(["edgeshadow"] + sys.argv[1:2])
    return name


class Lock:
    """An exclusive lock on `path`, described to other commands as `what`."""

    def __init__(self, path, what, shared=False):
        self.path, self.what, self.shared = Path(path), what, shared
        self._file = None

    def acquire(self):
        if self._file is not None:
            return self
        try:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.shared:     # every user's port locks: each owns the files it made (sticky)
                    self.path.parent.chmod(0o1777)
            try:
                f = open(self.path, "a+")
            except PermissionError:    # another user's lock file: flock works read-only too
                f = open(self.path, "r")
        except OSError as e:
            raise EdgeshadowError(f"cannot use {self.what}: {e.strerror} ({self.path})")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            pid, _, command = holder.partition(" ")
            by = f"PID {pid}" + (f" ({command})" if command else "") if pid else "another command"
            raise EdgeshadowError(f"{self.what} is in use by {by}",
                                  hint="wait for it to finish or stop it", exit_code=EXIT_UNTESTED)
        if f.writable():
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()} {_command()}\n")
            f.flush()
        self._file = f
        return self

    def release(self):
        f, self._file = self._file, None
        if f is not None:
            f.close()               # closing drops the flock

    @property
    def held(self):
        return self._file is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def port_lock(port):
    """The lock of a serial port, named from its real path (a symlink and its target share it)."""
    real = os.path.realpath(str(port))
    name = real.strip("/").replace("/", "_") or "root"
    return Lock(lock_dir() / f"{name}.lock", f"port {port}", shared=True)


def folder_lock(folder, what="folder"):
    """The lock of a board folder (virtual board, demo); acquiring it makes the folder if missing."""
    return Lock(Path(folder) / FOLDER_LOCK_NAME, f"{what} {folder}")
