"""The webhook and lifecycle receivers: the validation handshake, clientState verification and the
turn of a notification batch into queue messages. The fastest and most exposed path of the product:
it imports no msgraph-sdk, msal or Key Vault client and reads no storage; only the queue is written."""
