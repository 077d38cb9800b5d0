"""What every request passes before the service does any work for it: the API key, the content
type and a hard cap on the body's size, checked in an ASGI middleware before the body is read,
let alone parsed. A client without the key cannot make the service read megabytes."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED = frozenset({"/predict", "/explain", "/info"})
"""Paths that need the key; /healthz, the playground and the API docs do not."""
JSON_BODIES = frozenset({"/predict", "/explain"})
"""Paths whose POST body must be JSON (other paths and methods: the app answers, 404 or 405)."""


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Guard:
    """A replica's checks: its key, and the largest body it reads."""

    api_key: bytes
    max_request_bytes: int

    def check(self, method: str, path: str, headers: dict[str, str]) -> Refusal | None:
        """The refusal of a request by its headers alone, or None to let it in."""
        if path in PROTECTED and not self._authorized(headers):
            return Refusal(
                401,
                "missing or wrong API key (Authorization: Bearer KEY)",
                (("www-authenticate", "Bearer"),),
            )
        if method != "POST":
            return None
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if path in JSON_BODIES and content_type != "application/json":
            return Refusal(415, "send the body as JSON (Content-Type: application/json)")
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            return Refusal(400, "Content-Length is not a number of bytes")
        if length is not None and int(length) > self.max_request_bytes:
            return self.too_large()
        return None

    def too_large(self) -> Refusal:
        return Refusal(413, f"the body is larger than {self.max_request_bytes} bytes")

    def _authorized(self, headers: dict[str, str]) -> bool:
        header = headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            key = header[7:].strip()
        else:
            key = headers.get("x-api-key", "").strip()
        return bool(self.api_key) and hmac.compare_digest(key.encode(), self.api_key)


async def _respond(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"error": refusal.message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode()) for name, value in refusal.headers),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit` (a body sent without a
    Content-Length, or with a false one, is cut off there)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestGuard:
    """ASGI middleware applying a `Guard` to every request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        refusal = guard.check(scope["method"], scope["path"], headers)
        if refusal is not None:
            await _respond(send, refusal)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_capped(receive, guard.max_request_bytes)
        if body is None:
            await _respond(send, guard.too_large())
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the app waits for a disconnect after the body
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
