"""HUB catalogue tables (global; visibility enforced by row-level security) and the tenant
library. Columns, types and nullability are the migrations' (tests/integration/test_schema.py
compares them); a foreign key is declared where the data access joins along it.

Every time column is set by the database clock: the data access writes ``clock_timestamp()``.
"""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
)
from piccolo.columns.reference import LazyTableReference
from piccolo.table import Table

from opencdmo.tenancy.tables import Tenant


class HubItem(Table, tablename="hub_items"):
    id = UUID(primary_key=True)
    publisher_id = ForeignKey(references=Tenant, null=False)
    kind = Text()
    slug = Text()
    visibility = Text(default="public")
    name = Text()
    summary = Text()
    latest_version = Text(null=True, default=None)
    category = Text(null=True, default=None)
    modalities = Array(Text())
    equipment_classes = Array(Text())
    tags = Array(Text())
    # search (tsvector): Piccolo has no tsvector column; hub.queries.set_latest writes it in SQL.
    install_count = BigInt(default=0)
    forked_from_version_id: ForeignKey[HubVersion] = ForeignKey(
        references=LazyTableReference("HubVersion", module_path=__name__), null=True
    )
    created_at = Timestamptz()
    updated_at = Timestamptz()


class HubVersion(Table, tablename="hub_versions"):
    id = UUID(primary_key=True)
    item_id = ForeignKey(references=HubItem, null=False)
    version = Text()
    major = Integer()
    minor = Integer()
    patch = Integer()
    content = JSONB()
    content_hash = Text()
    changelog = Text()
    published_at = Timestamptz()
    published_by = UUID(null=True, default=None)
    deprecated_message = Text(null=True, default=None)
    yanked_at = Timestamptz(null=True, default=None)


class HubDependency(Table, tablename="hub_dependencies"):
    # The key is (version_id, depends_on_id); a Piccolo table names one key column.
    version_id = UUID(primary_key=True)
    depends_on_id = UUID()
    pinned = Boolean()


class HubShare(Table, tablename="hub_shares"):
    # The key is (item_id, shared_with); a Piccolo table names one key column.
    item_id = UUID(primary_key=True)
    publisher_id = UUID()
    shared_with = ForeignKey(references=Tenant, null=False)


class LibraryItem(Table, tablename="library_items"):
    """A tenant's copy of a HUB version: installed (read-only, upgradable) or forked."""

    tenant_id = UUID()
    id = UUID(primary_key=True)
    source = Text()
    hub_item_id = ForeignKey(references=HubItem, null=False)
    hub_version_id = ForeignKey(references=HubVersion, null=False)
    kind = Text()
    slug = Text()
    name = Text()
    version = Text()
    content = JSONB()
    content_hash = Text()
    revision = Integer(default=1)
    author_id = UUID(null=True, default=None)
    published_item_id = UUID(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
