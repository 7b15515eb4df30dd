"""Display names of the HUB's closed vocabularies (kinds, modalities, categories), for facets
and badges, and of the search's facets and orders. Publishers and equipment classes are named
by their own records."""

from __future__ import annotations

KINDS = {
    "unit_operation": "Unit operation",
    "recipe": "Recipe",
    "method": "QC method",
    "material": "Material",
    "equipment_class": "Equipment class",
}
MODALITIES = {
    "car-t": "CAR-T",
    "tcr-t": "TCR-T",
    "aav": "AAV",
    "lvv": "Lentiviral vector",
    "msc": "MSC",
    "ipsc": "iPSC",
    "nk": "NK cell",
}
CATEGORIES = {
    "cell-processing": "Cell processing",
    "upstream": "Upstream",
    "downstream": "Downstream",
    "fill-finish": "Fill and finish",
    "qc-sampling": "QC sampling",
    "material-prep": "Material preparation",
    "storage-logistics": "Storage and logistics",
}
FIXED = {"kind": KINDS, "modality": MODALITIES, "category": CATEGORIES}
FACETS = {
    "kind": "Kind",
    "modality": "Modality",
    "category": "Category",
    "publisher": "Publisher",
    "equipment_class": "Equipment class",
}
SORTS = {
    "relevance": "Relevance",
    "installs": "Most installed",
    "updated": "Recently updated",
    "name": "Name",
}
ORDERS = {  # how a results page says the order it shows
    "relevance": "best match first",
    "installs": "most installed first",
    "updated": "recently updated first",
    "name": "by name",
}


def humanised(key: str) -> str:
    """A key shown as words when it has no display name: ``cell-processing`` -> ``Cell
    processing``."""
    words = key.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else key


def label(facet: str, value: str) -> str:
    return FIXED.get(facet, {}).get(value) or humanised(value)


def kind_label(kind: str) -> str:
    return label("kind", kind)
