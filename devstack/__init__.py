"""The local stack: Azurite control, the local Functions runner and the Microsoft 365 and Key Vault
stand-ins. Never deployed (.funcignore); nothing in shared/ imports it."""
