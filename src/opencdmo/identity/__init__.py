"""identity context."""
