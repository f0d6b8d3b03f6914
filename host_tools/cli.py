"""`edgeshadow`: a thin parser over the host_tools library.

Commands live in host_tools/commands/<name>.py (see that package's docstring). Errors meant for
the user are EdgeshadowError: printed as one line, exit code 1 (or the error's own code).
"""
import argparse
import importlib
import pkgutil
import sys

from host_tools import commands
from host_tools.errors import EdgeshadowError


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgeshadow",
        description="Flash, deploy, provision, bench-test and simulate ESP32 sensor boards on AWS IoT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"host_tools.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except EdgeshadowError as e:
        print(f"edgeshadow: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgeshadow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
