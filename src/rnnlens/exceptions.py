"""The one exception type that reaches users as a one-line message."""


class RnnlensError(Exception):
    """A problem with the user's input or environment.

    The CLI prints it as ``rnnlens: error: <message>`` and exits with status 2, without a
    traceback. The message names the problem and, where there is one, the fix.
    """
