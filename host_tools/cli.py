"""`edgeshadow`: a thin parser over the host_tools library.

Commands live in host_tools/commands/<name>.py (see that package's docstring). Errors meant for
the user are EdgeshadowError: printed as one line, exit code 1 (or the error's own code). Output
follows host_tools/output.py: results on stdout, progress on stderr, `--json` where a command
reports something; exit codes in host_tools/errors.py.
"""
import argparse
import importlib
import os
import pkgutil
import sys
from importlib import metadata

from host_tools import commands
from host_tools.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, EdgeshadowError


def version():
    try:
        return metadata.version("edgeshadow")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgeshadow",
        description="Flash, deploy, provision, bench-test and simulate ESP32 sensor boards on AWS IoT.",
        epilog="Results go to stdout, progress and diagnostics to stderr; --json where a command reports "
               "something. " + EXIT_CODES_HELP + ".",
    )
    parser.add_argument("--version", action="version", version=f"edgeshadow {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"host_tools.commands.{info.name}")
        module.register(sub)
    return parser


def _quiet_broken_pipe():
    # stdout closed by the reader (`| head`): stop quietly, as a Unix tool does.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
        return 1


if __name__ == "__main__":
    sys.exit(main())
