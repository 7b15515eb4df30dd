"""Validation evidence: the requirements and traceability matrix, the pytest plugin that marks
and records its evidence tests, and the operational qualification (OQ) report."""
