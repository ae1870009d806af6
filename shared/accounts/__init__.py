"""Accounts: the model and status matrix (model.py), their rows and indexes (repository.py), and
connecting, confirming, reconnecting and disconnecting a mailbox (connect.py, status.py)."""
