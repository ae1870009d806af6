"""The conventions of the JSON API the SaaS backend calls, in one place: request bodies read field by
field with errors that name the field, one error shape, and times as ISO 8601 UTC strings.

Error shape (every JSON route): ``{"error": {"code": <stable code>, "message": <a sentence>,
"field": <the request field at fault, when one is>}}``. Codes are part of the API: a client may
branch on them, so they never change meaning. The OpenAPI document (shared/openapi.py) lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.http import HttpResult, json_result

MAX_BODY_BYTES = 16_384


class RequestError(ValueError):
    """A request the API refuses: its HTTP status, stable code, sentence and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def result(self) -> HttpResult:
        return error_result(self.status, self.code, self.message, field=self.field)


def error_result(status: int, code: str, message: str, *, field: str | None = None) -> HttpResult:
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return json_result(status, {"error": error})


def iso_utc(epoch_seconds: float | None) -> str | None:
    """An instant as the API writes it: ISO 8601 in UTC with a Z, to the second."""
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise RequestError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_body", "the body must be a JSON object")
    return data


def text(data: Mapping[str, Any], name: str, limit: int) -> str:
    """A required, non-blank string field of at most ``limit`` characters."""
    value = data.get(name)
    if value is None:
        raise RequestError(400, "missing_field", f"{name} is required", name)
    if not isinstance(value, str):
        raise RequestError(400, "invalid_field", f"{name} must be a string", name)
    if not value.strip():
        raise RequestError(400, "invalid_field", f"{name} must not be blank", name)
    if len(value) > limit:
        raise RequestError(400, "invalid_field", f"{name} is longer than {limit} characters", name)
    return value


def optional_text(data: Mapping[str, Any], name: str, limit: int) -> str | None:
    return text(data, name, limit) if data.get(name) is not None else None


def boolean(data: Mapping[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise RequestError(400, "invalid_field", f"{name} must be true or false", name)
    return value


def query_boolean(params: Mapping[str, str], name: str, default: bool) -> bool:
    """A true/false query parameter; anything else is refused rather than read as false."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise RequestError(400, "invalid_field", f"{name} must be true or false", name)


def query_whole(params: Mapping[str, str], name: str, *, default: int, low: int, high: int | None = None) -> int:
    """A whole-number query parameter within [low, high] (no upper bound when ``high`` is None)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise RequestError(400, "invalid_field", f"{name} must be a whole number {bounds}", name)
    return int(value)
