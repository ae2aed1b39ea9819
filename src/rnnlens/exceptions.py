"""The one exception type that reaches users as a one-line message."""

from __future__ import annotations


class RnnlensError(Exception):
    """A problem with the user's input or environment.

    The CLI prints it as ``rnnlens: error: <message>`` and exits with status 2, without a
    traceback. The message names the problem and, where there is one, the fix.

    ``field``: the setting at fault when the message starts with a library name (``epochs must be > 0``);
    the CLI then shows the flag of that name instead (``--epochs must be > 0``).
    """

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
