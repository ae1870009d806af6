"""Accounts: the model and status matrix (model.py), their rows and indexes (repository.py), status
changes and the notices they owe the SaaS (status.py), and purge as queued work (purge.py). The
connect flow that creates accounts is shared.connect, above this package."""
