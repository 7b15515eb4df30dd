"""Master recipes as ISA-88 BatchML (MESA B2MML V0700 ``BatchInformation/MasterRecipe``),
both ways.

- ``revision_to_batchml(head, content, pinned, exported_at=...)``: a revision as BatchML,
  pure (what goes where: ``_export``); ``head`` is a ``RecipeHead`` (``RecipeHead.of`` makes
  one from a revision mapping), ``content`` the revision's stored content and ``pinned`` the
  library content its steps pin, by hash (typed, or the stored JSON documents);
- ``read_document(bytes)``: another system's document, parsed safely (no DTD, no entities,
  no network, a size limit) and validated against the schema (``_document``);
- ``map_document``: what of it maps onto the tenant's library, and the gap report of what
  does not (``_mapping``);
- ``service``: the export of a recipe's revision and the import as a draft master recipe, one
  unit of work each.
"""

from opencdmo.recipes.batchml_recipe._export import RecipeHead, revision_to_batchml

__all__ = ["RecipeHead", "revision_to_batchml"]
