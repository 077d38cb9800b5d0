"""Traffic for the served model, good and hostile, shared by the load test
(tests/serve/test_service.py, 1,000 requests) and bench/serve_load.py (10,000): valid
/predict requests mixed with malformed ones of every kind a client can send."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

GOOD_TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the worst film of the year : dull , lifeless and painfully unfunny .",
    "it 's a charming and often affecting journey .",
]
JSON = "application/json"


@dataclass(frozen=True)
class Shot:
    """One request: its kind, body bytes, content type, whether it sends the key."""

    kind: str
    body: bytes
    content_type: str = JSON
    keyed: bool = True


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def malformed(max_request_bytes: int) -> list[Shot]:
    """One request of every malformed kind."""
    nested = b"[" * 100_000 + b"]" * 100_000  # deeper than any JSON parser's recursion
    return [
        Shot("bad_json", b'{"text": "unclosed'),
        Shot("empty_body", b""),
        Shot("wrong_type", _json({"text": 42})),
        Shot("empty_text", _json({"text": ""})),
        Shot("unknown_key", _json({"text": "a", "mood": "grumpy"})),
        Shot("not_an_object", _json(["text"])),
        Shot("too_many_inputs", _json({"texts": ["x"] * 10_000})),
        Shot("oversize_text", _json({"text": "x" * 1_000_000})),
        Shot("non_utf8", b'{"text": "caf\xe9 \xff\xfe"}'),
        Shot("deeply_nested", nested),
        Shot("wrong_content_type", _json({"text": "fine"}), content_type="text/plain"),
        Shot("huge_body", b'{"text": "' + b"x" * (max_request_bytes + 1) + b'"}'),
        Shot("no_key", _json({"text": "fine"}), keyed=False),
    ]


def good() -> list[Shot]:
    return [Shot("good", _json({"text": text})) for text in GOOD_TEXTS] + [
        Shot("good", _json({"texts": GOOD_TEXTS}))
    ]


@dataclass
class Outcome:
    """What the traffic got back."""

    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count
    not_json_errors: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    def count(self, malformed: bool, predicate) -> int:
        return sum(
            n
            for (kind, status), n in self.statuses.items()
            if (kind != "good") == malformed and predicate(status)
        )


def send(
    url: str, key: str, total: int, clients: int, malformed_share: float, max_request_bytes: int
) -> Outcome:
    """`total` /predict requests from `clients` threads, every `1 / malformed_share`-th of
    them malformed (cycling through every kind); each answer's status, and whether an error
    came as JSON with an `error`."""
    bad, fine = malformed(max_request_bytes), good()
    every = max(1, round(1 / malformed_share)) if malformed_share else total + 1
    shots = [
        bad[(i // every) % len(bad)] if i % every == 0 else fine[i % len(fine)]
        for i in range(total)
    ]
    outcome, lock, next_index = Outcome(), threading.Lock(), iter(range(total))

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            shot = shots[index]
            headers = {"Content-Type": shot.content_type}
            if shot.keyed:
                headers["Authorization"] = f"Bearer {key}"
            response = session.post(f"{url}/predict", data=shot.body, headers=headers, timeout=120)
            is_json_error = response.ok
            if not response.ok:
                try:
                    is_json_error = isinstance(response.json().get("error"), str)
                except ValueError:
                    is_json_error = False
            with lock:
                outcome.statuses[(shot.kind, response.status_code)] += 1
                if not is_json_error:
                    outcome.not_json_errors.append((shot.kind, response.status_code))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - began
    return outcome
