"""HUB context: the catalogue of versioned process content, publishing, search."""
