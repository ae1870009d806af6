"""Storage: the TableStore and WorkQueue ports (ports.py), Table Storage's rules as pure functions
(limits.py), the in-memory versions (memory.py) and the Azure ones (azure_tables.py,
azure_queues.py, built by factory.py). Callers depend on the ports only."""
