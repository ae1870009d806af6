"""Operations: structured logging with secret redaction, the journal, health."""
