"""The checks made on a request's headers, before its body is read."""

from __future__ import annotations

import pytest

from hpo.serve.guard import Guard

KEY = "k" * 40
guard = Guard(api_key=KEY.encode(), max_request_bytes=1000)


def headers(**extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}", "content-type": "application/json", **extra}


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (headers(), None),
        (headers(**{"content-length": "1000"}), None),
        (headers(**{"content-length": "1001"}), 413),
        (headers(**{"content-length": "12abc"}), 400),
        (headers(**{"content-type": "text/plain"}), 415),
        ({"content-type": "application/json", "content-length": "99999999"}, 401),  # key first
    ],
)
def test_headers_alone_decide(sent: dict[str, str], status: int | None) -> None:
    refusal = guard.check("POST", "/predict", sent)
    assert (refusal.status if refusal else None) == status
