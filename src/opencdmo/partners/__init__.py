"""Partners: sponsor-CDMO relationships between tenants and the sponsor's view of its batches."""
