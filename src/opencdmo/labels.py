"""Display names for the keys the system stores: roles, kinds of HUB item, modalities,
criticalities, recipe states. A page shows ``label(key)``, never the key itself.

Keys without an entry (a step key an engineer chose, a role a tenant's manifest adds) are
made readable the same way: words split at ``_`` and ``-``, the first capitalised, known
abbreviations in capitals (``qa_approver`` reads "QA approver").
"""

from __future__ import annotations

from typing import Final

NAMES: Final[dict[str, str]] = {
    # roles (access/policy.csv)
    "tenant_admin": "Tenant administrator",
    "process_engineer": "Process engineer",
    "qa_approver": "QA approver",
    "qc_analyst": "QC analyst",
    "production_supervisor": "Production supervisor",
    "production_operator": "Production operator",
    "materials_handler": "Materials handler",
    "viewer": "Viewer",
    # equipment statuses and logbook entries
    "available": "Available",
    "in_use": "In use",
    "out_of_service": "Out of service",
    "maintenance": "Maintenance",
    "cleaning": "Cleaning",
    "calibration": "Calibration",
    # equipment signals
    "ph": "pH",
    # HUB item kinds
    "unit_operation": "Unit operation",
    "method": "QC method",
    "material": "Material",
    "equipment_class": "Equipment class",
    "recipe": "Recipe",
    # kinds of recipe document
    "sop": "SOP",
    "development_report": "Development report",
    "risk_assessment": "Risk assessment",
    # modalities
    "car-t": "CAR-T",
    "tcr-t": "TCR-T",
    "aav": "AAV",
    "lvv": "Lentiviral vector",
    "msc": "MSC",
    "ipsc": "iPSC",
    "nk": "NK cells",
    # criticality
    "CPP": "Critical process parameter",
    "KPP": "Key process parameter",
    "non-critical": "Non-critical",
    # recipe states
    "draft": "Draft",
    "in_review": "In Review",
    "approved": "Approved",
    "effective": "Effective",
    "retired": "Retired",
    # batch entry checks
    "in_limits": "in limits",
    "outside_normal": "outside the normal range",
    "outside_par": "outside the proven acceptable range",
    "invalid": "outside the field's limits",
    # tenant kinds
    "cdmo": "CDMO",
    "sponsor": "Sponsor",
    "platform": "Platform",
}
_ABBREVIATIONS: Final = frozenset(
    {
        "qa",
        "qc",
        "hub",
        "api",
        "cdmo",
        "car",
        "tcr",
        "aav",
        "lvv",
        "msc",
        "ipsc",
        "nk",
        "sop",
        "pcr",
        "elisa",
        "ph",
        "coi",
        "id",
        "uv",
        "ln2",
        "co2",
        "hek293",
        "bsc",
        "tff",
        "ebr",
    }
)


def label(key: object) -> str:
    """The display name of a stored key (see the module docstring); "" for None."""
    if key is None:
        return ""
    text = str(key)
    if text in NAMES:
        return NAMES[text]
    words = text.replace("_", " ").replace("-", " ").split()
    shown = [w.upper() if w.lower() in _ABBREVIATIONS else w.lower() for w in words]
    if shown and shown[0].islower():
        shown[0] = shown[0].capitalize()
    return " ".join(shown)
