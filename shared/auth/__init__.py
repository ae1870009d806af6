"""Sign-in and tokens: the IdentityProvider port (msal behind it), the TokenVault port (Key Vault
behind it), and the per-account credential msgraph-sdk uses. Tokens never leave this package in a
form that reaches a log, a table or a queue."""
