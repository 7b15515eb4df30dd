"""Batches: control recipes frozen from an effective master recipe, executed under the ISA-88
state machine (``states``), numbered by the tenant's pattern (``tenancy.batch_numbering``)."""
