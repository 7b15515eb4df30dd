"""signatures context."""
