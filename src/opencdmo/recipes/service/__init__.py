"""Master recipes: the commands and reads of the recipe context, by concern.

- ``_revisions``: create, save (validated, optimistic concurrency), history, diffs
- ``_pins``: the library content each revision pins, kept append-only
- ``_lifecycle``: submit, approve, reject, make effective, retire (signed commands)
- ``_hub_import``: a master recipe from a HUB recipe
- ``_publication``: an effective recipe published to the HUB
- ``_in_force``: the effective revision with its pinned content (what a batch is made from)
- ``_queues``: one person's recipe work queues (awaiting signature, drafts, returned, recently
  effective), read for the dashboard

Every command owns one unit of work (``opencdmo.db.tx.unit_of_work``); the data access is in
``opencdmo.recipes.queries``.
"""

from opencdmo.recipes.service._hub_import import create_from_hub, hub_item_id
from opencdmo.recipes.service._in_force import InForce, formulas_in_force, in_force
from opencdmo.recipes.service._lifecycle import (
    STATUS_NAMES,
    TRANSITIONS,
    approve,
    make_effective,
    reject,
    retire,
    review_problems,
    run,
    submit,
)
from opencdmo.recipes.service._pins import library, names, pinned_contents
from opencdmo.recipes.service._publication import publications, publish_to_hub
from opencdmo.recipes.service._queues import (
    RECENT_DAYS,
    awaiting_signature,
    drafts,
    recently_effective,
    returned,
)
from opencdmo.recipes.service._revisions import (
    RecipeRecord,
    compare,
    compare_described,
    create,
    get,
    history,
    list_recipes,
    save,
)

__all__ = [
    "RECENT_DAYS",
    "STATUS_NAMES",
    "TRANSITIONS",
    "InForce",
    "RecipeRecord",
    "approve",
    "awaiting_signature",
    "compare",
    "compare_described",
    "create",
    "create_from_hub",
    "drafts",
    "formulas_in_force",
    "get",
    "history",
    "hub_item_id",
    "in_force",
    "library",
    "list_recipes",
    "make_effective",
    "names",
    "pinned_contents",
    "publications",
    "publish_to_hub",
    "recently_effective",
    "reject",
    "retire",
    "returned",
    "review_problems",
    "run",
    "save",
    "submit",
]
