"""A batch record as an ISA-88 part 4 batch production record in BatchML (MESA B2MML V0700),
valid against the schema vendored in ``b2mml/xsd/``. Pure: no database, no clock.

``to_batchml(BatchRecordDoc) -> bytes`` builds it, ``validate(bytes) -> list[str]`` checks
it. Where each part of the record goes (only standard elements; what the standard has no
element for rides in its generic slots: ``OtherInformation``, ``UserAttribute``, ``Category``,
and 'Other' codes naming it in ``OtherValue``):

- the batch: the ``BatchProductionRecord`` header: ``ID`` and ``EntryID`` the batch id,
  ``BatchID`` its number, ``EquipmentScope`` the site, ``MaterialDefinitionID`` the product,
  ``TimeStamp``/``PublishedDate`` the export time, ``CreationDate``, and ``RecordStatus`` the
  disposition (``Released``, ``Rejected``) or ``Pending``;
- ``MasterRecipes``: the master recipe revision it was made from (id, revision, name);
- ``ControlRecipes``: the control recipe, the batch's ISA-88 state in ``Header/Status``, the
  procedure as nested ``RecipeElement``s (Procedure > UnitProcedure > Operation > Phase, ids
  their paths, each state in its ``Header/Status``), and ``OtherInformation`` for the content
  hash (``content_hash``), the formula, the sponsor and the chain of identity (``donor_id``,
  ``coi_label``, ``apheresis_id``);
- ``Events``, oldest first: the target start (Control Recipe / Target Start Time); each start
  and end of the batch and of every element (Procedural Execution / State Change, the state
  as the value); every entry, superseded ones kept (manual: Operator / Prompt Response,
  equipment: Equipment / Process Data, calculated: General / Process Data), with its value,
  data type, UCUM unit and field key, the value it corrects as ``PreviousValue``, the person,
  the phase, the source as ``Category`` and ``check``, ``device_time``, ``superseded_by`` as
  user attributes; exceptions (Alarm / Other 'Exception', kind and severity in ``AlarmData``);
  deviations (Other 'Deviation' / Status Change, the number as ``ExternalReference``, the
  classification as ``Category``, the status as the value, ``closed_at``); the chain of
  custody (Material / Movement: the holder as ``PersonID``, the location as the value,
  ``held_until``); each container used (Material / Consume) and each lot made (Material /
  Produce): the lot number as ``ExternalReference``, the quantity with its UCUM unit and the
  material as the value, the step, the person, ``lot_id``;
- ``ChangeHistory``: one ``Change`` per correction (the entry changed, its value before, the
  reason);
- ``Comments``: the disposition of each exception reviewed (the disposition, the comment, by
  whom);
- ``PersonnelIdentification``: one manifest per electronic signature (the record signed,
  printed name, meaning, time with offset, reason).
"""

from opencdmo.batches.batchml._record import to_batchml
from opencdmo.batches.batchml.model import (
    BatchHeader,
    BatchRecordDoc,
    CustodyEvent,
    Deviation,
    Entry,
    ExceptionRecord,
    MaterialEvent,
    Operation,
    Phase,
    Signature,
    UnitProcedure,
)
from opencdmo.batches.batchml.schema import validate

__all__ = [
    "BatchHeader",
    "BatchRecordDoc",
    "CustodyEvent",
    "Deviation",
    "Entry",
    "ExceptionRecord",
    "MaterialEvent",
    "Operation",
    "Phase",
    "Signature",
    "UnitProcedure",
    "to_batchml",
    "validate",
]
