"""`edgeshadow`: a thin parser over the host_tools library.

Commands live in host_tools/commands/<name>.py (see that package's docstring). Errors meant for
the user are EdgeshadowError: printed as one line, exit code 1 (or the error's own code). Output
follows host_tools/output.py: results on stdout, progress on stderr, `--json` where a command
reports something; exit codes in host_tools/errors.py.

An OSError no command worded itself (a file, a port) is still one line naming the file;
EDGESHADOW_TRACEBACK=1 shows its traceback instead (for a bug report).

A run of one command imports that command's module only (`edgeshadow deploy ...` never loads
boto3 or esptool); `edgeshadow --help` imports them all, so command modules import their library
inside `do_<verb>` when it is heavy (tests/perf/bench_cli_latency.py times the first line).
"""
import argparse
import importlib
import os
import pkgutil
import sys

from host_tools import commands
from host_tools.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_PIPE, EdgeshadowError


def version():
    from importlib import metadata  # ~0.1 s of imports: only for --version
    try:
        return metadata.version("edgeshadow")
    except metadata.PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"edgeshadow {version()}")
        parser.exit()


def command_names():
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser(only=None):
    """The `edgeshadow` parser: every command, or only the command named `only` (its module alone
    is imported)."""
    parser = argparse.ArgumentParser(
        prog="edgeshadow",
        description="Flash, deploy, provision, bench-test and simulate ESP32 sensor boards on AWS IoT.",
        epilog="Results go to stdout, progress and diagnostics to stderr; --json where a command reports "
               "something. " + EXIT_CODES_HELP + ".",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in command_names():
        if only is None or name == only:
            importlib.import_module(f"host_tools.commands.{name}").register(sub)
    return parser


def _quiet_broken_pipe():
    # stdout closed by the reader (`| head`): stop quietly, as a Unix tool does.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _os_error_line(e):
    """An OSError no layer below named (a file or a port), as one line naming what failed."""
    what = e.strerror or str(e)
    if e.filename is not None:
        what += f": {e.filename}"
        if e.filename2 is not None:
            what += f" -> {e.filename2}"
    return what


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        names = command_names()
        if argv and argv[0] in names:
            only = argv[0]
        elif argv[:1] == ["--version"]:
            only = ""  # no command module is needed
        else:
            only = None
        args = build_parser(only).parse_args(argv)
        code = args.func(args) or 0
        sys.stdout.flush()
        return code
    except EdgeshadowError as e:
        print(f"edgeshadow: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgeshadow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_PIPE
    except OSError as e:  # a file or device error a command did not word itself: still one line
        if os.environ.get("EDGESHADOW_TRACEBACK"):
            raise
        print(f"edgeshadow: error: {_os_error_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
