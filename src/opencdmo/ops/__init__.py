"""Operations: backup and restore, Prometheus metrics, API rate limits."""
