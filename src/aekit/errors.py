"""The one exception type for mistakes a user can make (bad input, missing files, ...).

The CLI turns an ``AekitError`` into a single line on stderr and a non-zero exit; any other
exception is a bug and keeps its traceback.
"""


class AekitError(Exception):
    """A user-fixable problem. The message says what is wrong and what to do."""

    exit_code = 2
