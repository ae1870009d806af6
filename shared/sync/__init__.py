"""The sync engine (inbound): delta rounds per mailbox. Today only the gate every sync message passes
first; the engine itself arrives with the sync engine issues (docs/architecture.md)."""
