"""Microsoft 365 simulator: Entra ID sign-in (identity.py), Microsoft Graph (graph.py), its control API
(control.py), all over one in-memory state (state.py), served by server.py.

It follows the documented services (Microsoft's public docs, cited beside the code), never the
product's expectations; behaviour the docs do not state is a named switch in ``state.Switches``,
marked assumed. subscriptions.py (subscriptions), notifications.py (handshake, change and lifecycle
notifications) and throttling.py (per-mailbox throttling, injected faults) extend Graph; part 3 adds
events.py (events, delta, recurrence) as a further route table over the same state.
"""
