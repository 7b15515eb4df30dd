"""Display names of the HUB's closed vocabularies (kinds, modalities, categories), for facets
and badges. Publishers and equipment classes are named by their own records."""

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


def humanised(key: str) -> str:
    """A key shown as words when it has no display name: ``cell-processing`` -> ``Cell
    processing``."""
    words = key.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else key


def label(facet: str, value: str) -> str:
    return FIXED.get(facet, {}).get(value) or humanised(value)


def kind_label(kind: str) -> str:
    return label("kind", kind)
