"""tenancy context."""
