"""Poisoned queue messages: what the host moved to ``<queue>-poison`` after maxDequeueCount deliveries.

The poison handlers (``hold``) copy each such message into the ``poison`` table (queue messages expire;
the table is what an operator replays from), degrade the account it concerned for ``poison:{kind}`` and
journal it; ``operator`` lists, replays and discards the rows, ``api`` is its HTTP face. Written down in
docs/architecture.md ("Poison"). Used only by function_app.py's triggers: the webhook path never imports
it, and nothing here imports msgraph-sdk, msal or Key Vault.
"""
