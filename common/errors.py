"""The one exception type that means "the user's input is wrong", not "the code is wrong".

The CLI catches it and prints its message as a single line, with no traceback.
"""


class UserError(Exception):
    """A problem the user can fix: missing or corrupt data, a bad flag, an unreadable file."""
