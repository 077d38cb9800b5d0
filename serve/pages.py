"""The service's two pages, served with a Content-Security-Policy and nothing from other sites:
the playground (its own inline script and style, allowed by their hashes) and the API docs
(Swagger UI 5, whose files the `fastapi-offline` package ships, served by the service itself)."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

PLAYGROUND = Path(__file__).with_name("playground.html").read_text()
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
"""The Swagger UI files the docs page loads, from /docs/<name>."""
_NO_FRAMES = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def _inline_hashes(html: str, tag: str) -> str:
    """CSP sources for the inline `<tag>` blocks of a page: their sha256 hashes."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks
    )


def _page(html: str, policy: str) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={
            "content-security-policy": policy,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        },
    )


PLAYGROUND_POLICY = (
    f"default-src 'none'; script-src {_inline_hashes(PLAYGROUND, 'script')}; "
    f"style-src {_inline_hashes(PLAYGROUND, 'style')}; connect-src 'self'; img-src 'self'; "
    f"{_NO_FRAMES}"
)


def playground() -> HTMLResponse:
    return _page(PLAYGROUND, PLAYGROUND_POLICY)


def docs(title: str) -> HTMLResponse:
    """Swagger UI for /openapi.json, every file from this service."""
    html = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=title,
        swagger_js_url="/docs/swagger-ui-bundle.js",
        swagger_css_url="/docs/swagger-ui.css",
        swagger_favicon_url="data:,",
    ).body.decode()
    policy = (
        f"default-src 'none'; script-src 'self' {_inline_hashes(html, 'script')}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        f"{_NO_FRAMES}"
    )
    return _page(html, policy)


def docs_asset(name: str) -> Response:
    """One of DOCS_ASSETS (anything else: 404)."""
    if name not in DOCS_ASSETS:
        return JSONResponse({"error": f"no such file: /docs/{name}"}, status_code=404)
    content = (files("fastapi_offline") / "static" / name).read_bytes()
    return Response(
        content,
        media_type=DOCS_ASSETS[name],
        headers={"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"},
    )
