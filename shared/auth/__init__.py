"""Authentication: credentials for Azure resources, and (later) the msal sign-in and token vault.

Imports azure-core and msal; never devstack.
"""
