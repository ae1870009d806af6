"""Signed callbacks to the SaaS (docs/callbacks.md)."""
