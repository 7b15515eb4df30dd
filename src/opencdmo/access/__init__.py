"""access context."""
