"""What the inventory's routes read from a multipart body: the certificate of analysis in a
file part (accepted or refused here, before anything is stored), the receipt as JSON in a
part, and how the OpenAPI schema describes these bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from opencdmo.errors import ValidationFailed
from opencdmo.inventory.coa import accept_coa
from opencdmo.settings import Settings
from opencdmo.storage.uploads import Upload
from opencdmo.web.files import file_part

COA_PART = "coa"


async def coa_upload(form: dict[str, Any], settings: Settings) -> Upload | None:
    """The CoA sent in the ``coa`` part (None when no file was chosen)."""
    part = await file_part(form, COA_PART)
    if part is None:
        return None
    return accept_coa(part.filename, part.declared_type, part.data, settings.upload_max_bytes)


async def json_part(form: dict[str, Any], name: str) -> bytes:
    """A JSON document sent as a part (text or a file)."""
    value = form.get(name)
    if isinstance(value, UploadFile):
        return await value.read()
    if isinstance(value, str) and value:
        return value.encode()
    raise ValidationFailed(
        f"{name}: send it as a part named {name} holding the JSON document.",
        details={"field": name},
    )


def uuid_field(form: dict[str, Any], name: str) -> UUID | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationFailed(f"{name}: must be an id (UUID).", details={"field": name}) from None


def _file(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


COA_FILE = "The certificate of analysis: a PDF, PNG or JPEG file (by its content)"


@dataclass
class ReceiptOperation(Operation):
    """The receipt takes JSON, or multipart with the JSON and the CoA file."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(
                    schema={"type": "object", "description": "The receipt"}  # type: ignore[arg-type]
                ),
                "multipart/form-data": OpenAPIMediaType(
                    schema={  # type: ignore[arg-type]
                        "type": "object",
                        "required": ["receipt"],
                        "properties": {
                            "receipt": {"type": "string", "description": "The receipt as JSON"},
                            COA_PART: _file(COA_FILE),
                        },
                    }
                ),
            },
        )


@dataclass
class CoaOperation(Operation):
    """The CoA comes as multipart: the file, and a reason and the file it replaces to
    replace one."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema={  # type: ignore[arg-type]
                        "type": "object",
                        "required": [COA_PART],
                        "properties": {
                            COA_PART: _file(COA_FILE),
                            "reason": {
                                "type": "string",
                                "maxLength": 2000,
                                "description": "Why (required to replace a CoA)",
                            },
                            "replaces": {
                                "type": "string",
                                "format": "uuid",
                                "description": "The file id of the CoA it replaces",
                            },
                        },
                    }
                ),
            },
        )
