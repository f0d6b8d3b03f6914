"""One module per top-level `edgeshadow` command.

Each module defines `register(subparsers)`, which adds its parser and sets `func=do_<verb>`;
`do_<verb>(args)` returns an exit code. The CLI finds the modules here, so adding a command is
adding a file.
"""
