"""Finding things across contexts: recipes, library items and HUB items by name or code."""
