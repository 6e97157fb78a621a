"""The one exception type that reaches users: a clear message, no traceback."""


class KTMError(Exception):
    """A problem with the user's input, files or configuration.

    The message names the offending value and says what to do. The CLI prints it on one
    line and exits with code 2.
    """
