"""What the user is told about their input: an error that stops, or a warning that goes on.

`UserError` means "the user's input is wrong", not "the code is wrong": the CLI
catches it and prints its message as a single line, with no traceback. `warn`
prints the one-line counterpart for what a command skips and carries on without.
"""

import sys


class UserError(Exception):
    """A problem the user can fix: missing or corrupt data, a bad flag, an unreadable file."""


def warn(message):
    """One `warning: ...` line on stderr: something was skipped or changed, and the command goes on."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
