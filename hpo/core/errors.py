"""The exception types for mistakes a user can fix (a bad sweep file, a missing column, an
unknown model). The CLI prints their message and exits with code 2; nothing else catches them."""


class UserError(Exception):
    """A problem in the user's input, with a message that says what to change."""


class SweepInterrupted(UserError):
    """A sweep stopped before every trial ended (Ctrl-C); `hpo resume` continues it."""


class DiskFull(UserError):
    """The storage ran out of space mid-sweep; the run dir stays resumable."""
