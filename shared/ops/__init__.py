"""Operations: structured logging with secret redaction, and the journal."""
