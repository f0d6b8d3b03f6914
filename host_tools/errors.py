"""The one user-facing error type of the host tools.

Library code raises EdgeshadowError with a sentence a user can act on (and, optionally, a hint);
the CLI turns it into one line on stderr and exit code 1. Nothing else should reach the user as a
traceback.

Exit codes, the same for every command (`edgeshadow --help` lists them):
"""

EXIT_OK = 0           # done, and verified
EXIT_FAILED = 1       # failed (the error line says what and where)
EXIT_USAGE = 2        # bad arguments (argparse)
EXIT_UNTESTED = 3     # could not test: no board, no broker, port busy (nothing was judged)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_PIPE = 141       # stdout closed by its reader (`| head`): stopped quietly (128 + SIGPIPE, as `yes | head`)

EXIT_CODES_HELP = ("exit codes: 0 ok, 1 failed, 2 usage error, 3 cannot test (no board, broker or port), "
                   "130 interrupted (Ctrl-C cut work short; a command that runs until Ctrl-C, such as "
                   "broker, sim, logs or a live monitor, ends with 0), 141 output closed early (| head)")


class EdgeshadowError(Exception):
    def __init__(self, message, hint=None, exit_code=1):
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self):
        msg = self.args[0] if self.args else ""
        return msg + (f" ({self.hint})" if self.hint else "")
