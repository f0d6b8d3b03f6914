"""The one user-facing error type of the host tools.

Library code raises EdgeshadowError with a sentence a user can act on (and, optionally, a hint);
the CLI turns it into one line on stderr and exit code 1. Nothing else should reach the user as a
traceback.
"""


class EdgeshadowError(Exception):
    def __init__(self, message, hint=None, exit_code=1):
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self):
        msg = self.args[0] if self.args else ""
        return msg + (f" ({self.hint})" if self.hint else "")
