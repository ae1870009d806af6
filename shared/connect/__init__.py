"""Connecting a mailbox: connect sessions, the OAuth callback, the SaaS's confirm, reconnect and
disconnect (connector.py), and the sweep of connections that never finished (sweep.py). A flow above
accounts, auth and subscriptions: it uses all three, and none of them knows it."""
