"""Database glue: connection URLs, the embedded server, the engine and pool, transactions."""
