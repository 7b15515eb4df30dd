"""Which library item each unit operation and QC method of a BatchML document maps to, read
in the import's open unit of work: the one the document names (slug and version); installed
or forked from the HUB at that version when only the HUB has it; else another version of it,
else a unit operation of the same name (each with a note); else none, and why."""

from __future__ import annotations

from opencdmo.errors import Forbidden
from opencdmo.hub import library_queries as copies
from opencdmo.hub import publication_queries
from opencdmo.hub import queries as hub_queries
from opencdmo.hub.model import Method, UnitOperation, decode
from opencdmo.recipes.batchml_recipe._mapping import Known
from opencdmo.recipes.batchml_recipe._tree import Resolved, Step
from opencdmo.recipes.content import Library
from opencdmo.recipes.service import _pins as pins
from opencdmo.scope import TenantContext

_TYPES: dict[str, type[UnitOperation | Method]] = {
    "unit_operation": UnitOperation,
    "method": Method,
}


class Resolver:
    """Resolutions by (kind, slug, version), the library read again after a copy from the
    HUB, so that two steps of one unit operation share one copy."""

    def __init__(self, ctx: TenantContext) -> None:
        self.ctx = ctx
        self.library: Library = {}
        self.done: dict[tuple[str, str, str, str], Resolved] = {}

    async def start(self) -> Resolver:
        self.library = await pins.library(self.ctx)
        return self

    async def steps(self, steps: list[Step]) -> dict[str, Resolved]:
        """Each operation's unit operation, by element id."""
        found: dict[str, Resolved] = {}
        for step in steps:
            element = step.element
            version = element.building_block_version or element.version
            found[element.id] = await self.one(
                "unit_operation", element.building_block, version, element.name
            )
        return found

    async def methods(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], Resolved]:
        return {ref: await self.one("method", *ref) for ref in sorted(wanted)}

    async def one(self, kind: str, slug: str, version: str, name: str = "") -> Resolved:
        key = (kind, slug, version, name)
        if key not in self.done:
            self.done[key] = await self._resolve(kind, slug, version, name)
            copied = self.done[key].library_item_id
            if copied is not None and copied not in self.library:
                self.library = await pins.library(self.ctx)
        return self.done[key]

    def _same(self, kind: str, slug: str, version: str | None) -> list[Resolved]:
        wanted = _TYPES[kind]
        return [
            Resolved(item_id, entry.content_hash, entry.content)
            for item_id, entry in self.library.items()
            if isinstance(entry.content, wanted)
            and entry.content.slug == slug
            and (version is None or entry.content.version == version)
        ]

    async def _resolve(self, kind: str, slug: str, version: str, name: str) -> Resolved:
        what = "unit operation" if kind == "unit_operation" else "QC method"
        if slug:
            exact = self._same(kind, slug, version or None)
            if exact:
                return exact[0]
            from_hub = await self._from_hub(kind, slug, version)
            if from_hub is not None:
                return from_hub
            other = self._same(kind, slug, None)
            if other and other[0].content is not None:
                note = (
                    f"version {version or '(none)'} of {what} {slug} is neither in the library "
                    f"nor on the HUB: mapped to version {other[0].content.version}"
                )
                return Resolved(
                    other[0].library_item_id, other[0].content_hash, other[0].content, note
                )
        by_name = self._by_name(kind, name)
        if by_name is not None:
            return by_name
        named = f"{slug} {version}".strip() or f"named '{name}'"
        return Resolved(None, note=f"no {what} {named} in the library or on the HUB")

    def _by_name(self, kind: str, name: str) -> Resolved | None:
        wanted = name.casefold()
        for item_id, entry in self.library.items():
            content = entry.content
            if wanted and isinstance(content, _TYPES[kind]) and content.name.casefold() == wanted:
                note = f"mapped by its name to {content.slug} {content.version}"
                return Resolved(item_id, entry.content_hash, content, note)
        return None

    async def _from_hub(self, kind: str, slug: str, version: str) -> Resolved | None:
        """The HUB's item of that slug and version, copied into the library (installed when
        the library has no copy of the item, forked at that version when it has another)."""
        from opencdmo.hub import library

        if not version:
            return None
        for item_id in await publication_queries.visible_items(kind, slug):
            chosen = await hub_queries.version_content(item_id, version)
            if chosen is None or chosen.yanked_at is not None:
                continue
            try:
                if await copies.installed_copy(item_id) is None:
                    await library.install(self.ctx, item_id, version)
                    copy_id = await copies.installed_copy(item_id)
                else:
                    copy_id = await library.fork(self.ctx, item_id, version)
            except Forbidden:
                note = f"{slug} {version} is on the HUB, but you may not install it"
                return Resolved(None, note=note)
            content = decode(chosen.content)
            assert isinstance(content, _TYPES[kind])
            assert copy_id is not None
            return Resolved(str(copy_id), chosen.content_hash, content)
        return None


async def known() -> Known:
    """The equipment classes and materials the library or the HUB hold, by slug."""
    held = await copies.typed_copies("equipment_class", "material")
    classes = {c.slug for c in held if c.kind == "equipment_class"}
    materials = {c.slug for c in held if c.kind == "material"}
    classes |= await publication_queries.visible_slugs("equipment_class")
    materials |= await publication_queries.visible_slugs("material")
    return Known(frozenset(classes), frozenset(materials))
