"""Structured logging: context (account, tenant, calendar, stage, request ids) bound once per unit of
work and appended to every log line, and a record factory that redacts every record in the process.

The Functions Python worker forwards only a record's message to the host, so context goes into the
message text (``... [account=abc stage=delta]``), where a support engineer searching App Insights
finds it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared.redaction import redact

# ``mailbox``: whose mailbox (the user in the Graph path); ``calendar_owner``: whose calendar; ``acting_user``:
# whose token made the call. One person for an owned calendar, three for a shared or delegated one.
CONTEXT_FIELDS = ("invocation", "account", "tenant", "mailbox", "calendar", "calendar_owner", "acting_user", "stage",
                  "request_id", "client_request_id")
# The ones the journal copies into each entry recorded inside the block (shared/ops/journal.py).
JOURNALED_CONTEXT = ("mailbox", "calendar_owner", "acting_user")

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated
_installed = False


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Bind context for everything logged inside the block (async-safe through contextvars)."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context fields: {sorted(unknown)}")
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


def install_redaction() -> None:
    """Make every log record in this process redacted and carry the bound context. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        context = _context.get()
        if context:
            message += " [" + " ".join(f"{k}={context[k]}" for k in CONTEXT_FIELDS if k in context) + "]"
        try:
            record.msg = redact(message)
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:
            if sys.is_finalizing():  # modules are being torn down: the line passes as it is
                return record
            # otherwise better no text than unredacted text
            record.msg, record.exc_info, record.exc_text = "[log line withheld: redaction failed]", None, None
        record.args = None
        for key, value in context.items():
            setattr(record, key, value)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
