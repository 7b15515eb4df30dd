"""Equipment: the registry of equipment units, their logbooks, and their use in batches."""
