"""Stopping this process as Ctrl-C would, from SIGTERM or from hpo itself (a filling disk)."""

from __future__ import annotations

import signal


def stop_as_on_ctrl_c() -> None:
    """Runs this process's SIGINT handler, as Ctrl-C does: Tune's graceful stop while a sweep
    runs, else Python's KeyboardInterrupt. Called rather than signalled: a process that a shell
    started in the background ignores SIGINT, and would not stop at all. Main thread only, as
    signal handlers are."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):  # SIG_IGN or SIG_DFL
        raise KeyboardInterrupt
    handler(signal.SIGINT, None)
