"""Graph subscriptions of each account: the gateway to Graph (port, in-memory and msgraph-sdk
versions), the rows that track them with their expiry time buckets, the worker that creates, renews,
reauthorizes and deletes them, and the renewer timer's fan-out."""
