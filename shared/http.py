"""What an HTTP handler in shared/ returns: status, body and headers, with no azure.functions
import, so handlers are tested without the host and function_app.py maps this to HttpResponse."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def json_result(status: int, payload: Mapping[str, Any]) -> HttpResult:
    return HttpResult(status, json.dumps(payload, sort_keys=True).encode(), "application/json")


def redirect(location: str) -> HttpResult:
    return HttpResult(302, b"", headers={"Location": location, "Cache-Control": "no-store"})


def page(status: int, title: str, message: str, *, hint: str = "") -> HttpResult:
    """A small HTML page for people in a browser. Every value is escaped: callers may pass text that
    came from a query string (an IdP's error_description)."""
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(message)}</p>"]
    if hint:
        parts.append(f"<p>{html.escape(hint)}</p>")
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head><body>{''.join(parts)}</body></html>")
    return HttpResult(status, body.encode(), "text/html; charset=utf-8",
                      headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'",
                               "X-Content-Type-Options": "nosniff"})
