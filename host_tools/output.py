"""One output convention for every command (as esptool, mpremote and gh do it).

- Results go to stdout; progress and diagnostics to stderr (`say`, `Progress`).
- A command that reports something takes `--json [FILE]` (`add_json_arg`): one JSON document on
  stdout (or `-`), or written to FILE whole (a temporary file renamed into place); with `--json`
  on stdout, nothing else is printed there (`emit`).
- Exit codes (errors.py): 0 ok, 1 failed, 2 usage, 3 cannot test, 130 interrupted.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from host_tools.errors import EdgeshadowError


def say(*parts, end="\n"):
    """A progress or diagnostic line on stderr."""
    print(*parts, end=end, file=sys.stderr, flush=True)


def json_target(value):
    """argparse type of --json: `-` (stdout) or a FILE whose folder exists, checked before any work
    is done (a usage error, exit code 2, not a traceback after a long run)."""
    if value == "-":
        return value
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: folder {parent} does not exist")
    return value


def add_json_arg(parser, what="the result"):
    """`--json` prints one JSON document on stdout; `--json FILE` writes it to FILE (`-`: stdout)."""
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE", type=json_target,
                        help=f"{what} as one JSON document: on stdout (`--json` or `--json -`) or in FILE")


def wants_json(args):
    return getattr(args, "json", None) not in (None, False)


def json_to_stdout(args):
    return getattr(args, "json", None) in ("-", True)


def emit(args, doc, text=None):
    """The result: `doc` as JSON when --json was given (stdout or FILE), and `text` (a string or a
    function printing the human form) on stdout otherwise. With --json FILE the text is printed too."""
    target = getattr(args, "json", None)
    if target in ("-", True):
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
        return
    if target:
        write_json_file(Path(target), doc)
        say(f"wrote {target}")
    if text is None:
        return
    if callable(text):
        text()
    else:
        print(text, flush=True)


def write_json_file(path, doc):
    """Write `doc` to `path` whole or not at all; a clear error for a folder or a missing parent."""
    path = Path(path)
    if path.is_dir():
        raise EdgeshadowError(f"--json {path}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeshadowError(f"--json {path}: folder {parent} does not exist")
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"  # not mkstemp: its 0600 would outlive the rename
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise EdgeshadowError(f"--json {path}: cannot write: {e.strerror or e}")


class Progress:
    """Progress of long work on stderr: a rich bar on a terminal, plain lines otherwise (logs, CI).

        with Progress("deploying", total=len(files)) as p:
            for f in files:
                ...; p.advance(1, f)
    """

    def __init__(self, what, total=None, unit=""):
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self._bar = None
        self._last = 0.0

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn
            from rich.console import Console
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        else:
            say(f"{self.what}" + (f" ({self.total} {self.unit})".rstrip() if self.total else "") + " ...")
        return self

    def advance(self, n=1, detail=None):
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n,
                             description=f"{self.what} {detail}" if detail else self.what)
        elif time.monotonic() - self._last >= 1.0 or (self.total and self.done >= self.total):
            self._last = time.monotonic()
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            say(f"  {self.what}: {count}" + (f" {detail}" if detail else ""))

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False


class NoProgress:
    """Progress's stand-in where one item's own lines say enough (one board)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, n=1, detail=None):
        pass
