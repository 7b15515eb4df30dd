"""The ``BatchProductionRecord`` document: its header, then its parts in the schema's order
(change history, comments, control recipe, events, master recipe, personnel)."""

from __future__ import annotations

from lxml import etree

from opencdmo.batches.batchml._events import entry_value, events
from opencdmo.batches.batchml._procedure import Element, procedure
from opencdmo.batches.batchml._xml import (
    B2MML,
    BATCH_STATUSES,
    XSI,
    add_nil,
    coded,
    el,
    iso,
    record_head,
    state_name,
)
from opencdmo.batches.batchml.model import (
    BatchHeader,
    BatchRecordDoc,
    Entry,
    ExceptionRecord,
    Signature,
)


def to_batchml(doc: BatchRecordDoc) -> bytes:
    """The batch record as a BatchML batch production record (UTF-8 XML)."""
    head = doc.header
    root = etree.Element(f"{{{B2MML}}}BatchProductionRecord", nsmap={None: B2MML, "xsi": XSI})
    el(root, "ID", head.batch_id)
    about = f"Batch {head.number}: {head.recipe_name} revision {head.revision} for {head.sponsor}"
    record_head(root, head.batch_id, "Batch Production Record", doc.exported_at, None, (about,))
    el(root, "EquipmentScope", head.site_code)
    el(root, "PublishedDate", doc.exported_at)
    if head.created_at is not None:
        el(root, "CreationDate", head.created_at)
    el(root, "BatchID", head.number)
    if head.product:
        el(root, "MaterialDefinitionID", head.product)
    el(root, "RecordStatus", (head.disposition or "pending").capitalize())
    _add_change_history(root, doc.entries)
    _add_dispositions(root, doc.exceptions)
    tree = procedure(doc)
    _add_control_recipe(root, head, tree)
    happened = el(root, "Events")
    for event in events(doc, tree):
        event.add(happened)
    _add_master_recipe(root, head)
    _add_signatures(root, doc.signatures)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _add_change_history(root: etree._Element, entries: tuple[Entry, ...]) -> None:
    """One change per correction: the entry it changed, the value before, and why."""
    corrections = [entry for entry in entries if entry.supersedes is not None]
    if not corrections:
        return
    by_id = {str(entry.id): entry for entry in entries}
    history = el(root, "ChangeHistory")
    for entry in corrections:
        change = el(history, "Change")
        about = f"{entry.field_name} corrected by {entry.entered_by} in entry {entry.id}"
        record_head(change, f"{entry.id}:change", "Change", entry.entered_at, None, (about,))
        el(change, "RecordReference", entry.supersedes)
        prior = by_id.get(str(entry.supersedes))
        if prior is None:
            add_nil(change, "PrechangeData")
        else:
            entry_value(prior).add(change, "PrechangeData")
        if entry.reason:
            el(change, "Reason", entry.reason)


def _add_dispositions(root: etree._Element, exceptions: tuple[ExceptionRecord, ...]) -> None:
    """An exception's disposition as a comment on it: the disposition, then the comment."""
    disposed = [exception for exception in exceptions if exception.disposition]
    if not disposed:
        return
    comments = el(root, "Comments")
    for exception in disposed:
        comment = el(comments, "Comment")
        about = (f"Disposition of the {exception.kind} exception",)
        entry_id = f"{exception.id}:disposition"
        record_head(comment, entry_id, "Comment", exception.disposed_at, None, about)
        el(comment, "RecordReference", exception.id)
        el(comment, "CommentText", exception.disposition)
        if exception.disposition_comment:
            el(comment, "CommentText", exception.disposition_comment)
        if exception.disposed_by:
            el(comment, "PersonID", exception.disposed_by)


def _add_control_recipe(root: etree._Element, head: BatchHeader, tree: Element) -> None:
    """The control recipe: the batch's state, its procedure and what identifies it."""
    record = el(el(root, "ControlRecipes"), "ControlRecipeRecord")
    record_head(record, f"{head.batch_id}:control-recipe", "Control Recipe", head.created_at)
    recipe = el(record, "ControlRecipe")
    el(recipe, "ID", head.number)
    el(recipe, "Version", head.revision)
    if head.created_at is not None:
        el(recipe, "VersionDate", head.created_at)
    el(recipe, "Description", f"{head.recipe_name}, formula {head.formula}")
    el(recipe, "BatchID", head.number)
    header = el(recipe, "Header")
    if head.product:
        el(header, "ProductID", head.product)
    coded(header, "Status", state_name(head.status), BATCH_STATUSES)
    tree.add(recipe)
    for key, value, about in _identification(head):
        _add_other_information(recipe, key, value, about)


def _identification(head: BatchHeader) -> list[tuple[str, str, str]]:
    """What identifies the control recipe and the batch that has no element of its own."""
    found = [
        (
            "content_hash",
            head.control_recipe_hash,
            "SHA-256 of the control recipe's canonical JSON",
        ),
        ("formula", head.formula, "The formula the batch is made with"),
        ("sponsor", head.sponsor, "The sponsor the batch is made for"),
        ("donor_id", head.donor_id, "Chain of identity: the donor"),
        ("coi_label", head.coi_label, "Chain of identity: the label"),
        ("apheresis_id", head.apheresis_id, "Chain of identity: the apheresis"),
    ]
    return [(key, value, about) for key, value, about in found if value is not None]


def _add_other_information(parent: etree._Element, key: str, value: str, about: str) -> None:
    node = el(parent, "OtherInformation")
    el(node, "ID", key)
    batch_value = el(node, "Value")
    el(batch_value, "ValueString", value)
    el(batch_value, "DataInterpretation", "Constant")
    el(batch_value, "DataType", "string")
    el(batch_value, "UnitOfMeasure", "")
    el(node, "Description", about)


def _add_master_recipe(root: etree._Element, head: BatchHeader) -> None:
    """The master recipe revision the control recipe was made from, by reference."""
    record = el(el(root, "MasterRecipes"), "MasterRecipeRecord")
    record_head(record, f"{head.recipe_id}:{head.revision}", "Master Recipe")
    recipe = el(record, "MasterRecipe")
    el(recipe, "ID", head.recipe_id)
    el(recipe, "Version", head.revision)
    el(recipe, "Description", head.recipe_name)
    if head.product:
        el(el(recipe, "Header"), "ProductID", head.product)


def _add_signatures(root: etree._Element, signatures: tuple[Signature, ...]) -> None:
    """Each signature as a personnel identification manifest of the record it signs: printed
    name, meaning, date and time with offset, and reason."""
    if not signatures:
        return
    people = el(root, "PersonnelIdentification")
    for signature in signatures:
        manifest = el(people, "PersonnelIdentificationManifest")
        when = iso(signature.signed_at)
        about = [f"{signature.signer_name} signed at {when}: {signature.meaning}"]
        if signature.record_hash:
            about.append(f"Signed content SHA-256 {signature.record_hash}")
        kind = "Personnel Identification Manifest"
        record_head(manifest, signature.id, kind, signature.signed_at, None, about)
        el(manifest, "RecordReference", signature.record_id, schemeName=signature.record_type)
        el(manifest, "Name", signature.signer_name)
        el(manifest, "ChangeIndication", signature.meaning)
        if signature.reason:
            el(manifest, "Reason", signature.reason)
