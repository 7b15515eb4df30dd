"""Recipes context: tenant master recipes, their revisions and their approval lifecycle."""
