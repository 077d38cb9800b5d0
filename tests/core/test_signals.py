"""Stopping as on Ctrl-C works whatever this process does with SIGINT."""

from __future__ import annotations

import signal

import pytest

from hpo.core.signals import stop_as_on_ctrl_c


def test_the_sigint_handler_in_place_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    called = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: lambda *args: called.append(signum))
    stop_as_on_ctrl_c()
    assert called == [signal.SIGINT]


@pytest.mark.parametrize("disposition", [signal.SIG_IGN, signal.SIG_DFL])
def test_an_ignored_sigint_still_stops(monkeypatch: pytest.MonkeyPatch, disposition) -> None:
    """A shell's background job ignores SIGINT: sending it would do nothing."""
    monkeypatch.setattr(signal, "getsignal", lambda signum: disposition)
    with pytest.raises(KeyboardInterrupt):
        stop_as_on_ctrl_c()


def test_python_default_handler_raises_keyboard_interrupt() -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Tune's may linger
    try:
        with pytest.raises(KeyboardInterrupt):
            stop_as_on_ctrl_c()
    finally:
        signal.signal(signal.SIGINT, previous)
