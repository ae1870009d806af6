"""Bookings: what the SaaS wants in Outlook (docs/architecture.md, "Bookings")."""
