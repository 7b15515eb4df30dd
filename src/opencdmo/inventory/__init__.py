"""Inventory and genealogy: materials, lots, containers, consumption and the lineage between
them (ARCHITECTURE.md section 2). So far only the printable container labels (``labels``)."""
