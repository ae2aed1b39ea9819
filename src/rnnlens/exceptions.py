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


class DiskFullError(RnnlensError):
    """A write failed because the disk (or the user's quota) is full; ``path`` is the file being written.

    Raised by :mod:`rnnlens.fsutil`'s atomic writers after they removed their temp file, so the previous
    version of ``path`` (if any) is untouched. ``hint`` is what to do next; callers that know more (the
    training loop knows the run can be resumed) raise a copy with a better one via :meth:`with_hint`.
    """

    def __init__(self, path: str, reason: str = "no space left on device", hint: str = "") -> None:
        self.path, self.reason = str(path), reason
        self.hint = hint or "the previous version of the file, if any, is kept; free space and run the command again"
        super().__init__(f"{reason} while writing {self.path}; {self.hint}")

    def __reduce__(self):  # survives pickling (reproduce's worker processes send errors back)
        return DiskFullError, (self.path, self.reason, self.hint)

    def with_hint(self, hint: str) -> "DiskFullError":
        return DiskFullError(self.path, self.reason, hint)
