"""What `hpo query` prints: labels and tokens are text, never rich markup."""

from __future__ import annotations

import pytest

from hpo.cli import serving


def test_markup_in_labels_and_tokens_is_printed_as_text(capsys: pytest.CaptureFixture) -> None:
    answer = {
        "label": "[bold]pos[/",
        "score": 0.9,
        "probabilities": {"[bold]pos[/": 0.9, "[/]": 0.1},
        "warnings": ["[red]careful"],
    }
    serving._print_answer(answer)
    serving._print_tokens([{"token": "[/]", "score": 0.5}, {"token": "[link=x]", "score": -0.1}])
    out = capsys.readouterr().out
    assert "[bold]pos[/ (0.900)" in out and "[/] 0.100" in out and "[red]careful" in out
    assert "[/](+0.50)" in out and "[link=x](-0.10)" in out
