"""Microsoft 365 simulator: Entra ID sign-in (identity.py), Microsoft Graph (graph.py), its control API
(control.py), all over one in-memory state (state.py), served by server.py.

It follows the documented services (/work/shared/graph-notes.md and the public docs), never the
product's expectations; behaviour the docs do not state is a named switch in ``state.Switches``,
marked assumed. Later parts add subscriptions.py (change notifications) and events.py (events, delta,
recurrence) as further route tables over the same state.
"""
