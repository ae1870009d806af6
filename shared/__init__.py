"""The product package: everything function_app.py's triggers call.

config (the only reader of the environment), errors (the taxonomy triggers map to retries and
statuses), ids, messages (versioned queue messages); store/ (Table and Queue storage behind small
interfaces), ops/ (logging with redaction, the journal, health). Later: auth/, graph/, sync/,
outbound/, webhook/ (see docs/architecture.md).
"""
