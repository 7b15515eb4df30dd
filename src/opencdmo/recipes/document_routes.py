"""A master recipe's documents: attach one (API and the recipe page's form, both multipart),
list them, download one as stored (streamed, its SHA-256 checked as it goes), remove one with
a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Stream, Template

from opencdmo.errors import AppError, ValidationFailed
from opencdmo.recipes import documents
from opencdmo.recipes.documents import FIELD, DocumentView
from opencdmo.recipes.page_routes import render_recipe_page
from opencdmo.recipes.schemas import DocumentOut, DocumentRemove
from opencdmo.scope import TenantContext
from opencdmo.settings import Settings
from opencdmo.storage.streams import read_chunks
from opencdmo.web.files import attachment, file_part, is_multipart
from opencdmo.web.guards import requires
from opencdmo.web.pages import form_data

DOCUMENTS = "/recipes/{recipe_id:uuid}/documents"
DOCUMENT = DOCUMENTS + "/{document_id:uuid}"
FILE = DOCUMENT + "/file"
REMOVE = DOCUMENT + "/remove"


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise ValidationFailed(f"{name}: must be text.", details={"field": name})
    return value


async def _add(
    request: Request[Any, Any, Any], settings: Settings, ctx: TenantContext, recipe_id: UUID
) -> DocumentView:
    """The attachment the request asks for: the recipe first (another tenant's is not found,
    whatever was sent), then the file and the fields."""
    await documents.recipe_of(ctx, recipe_id)
    form = await form_data(request) if is_multipart(request) else {}
    part = await file_part(form, FIELD)
    if part is None:
        raise ValidationFailed(
            f"{FIELD}: choose the document to attach (a multipart/form-data file part named "
            f"{FIELD}).",
            details={"field": FIELD},
        )
    upload = documents.accept_document(
        part.filename, part.declared_type, part.data, settings.upload_max_bytes
    )
    return await documents.add_document(
        ctx, recipe_id, upload, _text(form, "title"), _text(form, "kind")
    )


def _url(ctx: TenantContext, view: DocumentView, api: bool) -> str:
    prefix = "/api/v1" if api else ""
    row = view.row
    return f"{prefix}/t/{ctx.slug}/recipes/{row.recipe_id}/documents/{row.id}/file"


def out(ctx: TenantContext, view: DocumentView) -> DocumentOut:
    row, stored = view.row, view.file
    return DocumentOut(
        id=row.id,
        recipe_id=row.recipe_id,
        title=row.title,
        kind=row.kind,
        filename=stored.filename,
        content_type=stored.content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        added_by=view.added_by_name,
        added_at=row.added_at,
        removed=not row.current,
        removed_by=view.removed_by_name,
        removed_at=row.removed_at,
        removal_reason=row.removal_reason,
        download=_url(ctx, view, api=True),
    )


async def _download(ctx: TenantContext, recipe_id: UUID, document_id: UUID) -> Stream:
    view, reader = await documents.open_document(ctx, recipe_id, document_id)
    stored = view.file
    return Stream(
        read_chunks(reader),
        media_type=stored.content_type,
        headers={
            "Content-Disposition": attachment(stored.filename),
            "Content-Length": str(stored.size_bytes),
            "X-Content-SHA256": stored.sha256,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@dataclass
class DocumentOperation(Operation):
    """A document comes as multipart: the file, its title and its kind."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema={  # type: ignore[arg-type]
                        "type": "object",
                        "required": [FIELD, "title", "kind"],
                        "properties": {
                            FIELD: {
                                "type": "string",
                                "format": "binary",
                                "description": "The document: a PDF, PNG or JPEG file (by its "
                                "content; office files and other archives are refused)",
                            },
                            "title": {"type": "string", "maxLength": documents.TITLE_MAX},
                            "kind": {"type": "string", "enum": list(documents.KINDS)},
                        },
                    }
                ),
            },
        )


@get(DOCUMENTS, opt=requires("recipes", "read"), tags=["recipes"])
async def api_documents(
    ctx: NamedDependency[TenantContext], recipe_id: FromPath[UUID]
) -> list[DocumentOut]:
    """The recipe's documents in the order they were attached, the removed ones too (marked,
    with who removed them, when and why)."""
    return [out(ctx, v) for v in await documents.documents(ctx, recipe_id)]


@post(
    DOCUMENTS,
    opt=requires("recipes", "edit", uploads=True),
    tags=["recipes"],
    status_code=201,
    operation_class=DocumentOperation,
)
async def api_add_document(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
) -> DocumentOut:
    """Attach a document to the recipe (multipart/form-data: the file in a ``file`` part, a
    PDF, PNG or JPEG by its content; ``title``; ``kind``: sop, development_report,
    risk_assessment or other). A retired recipe's documents are not changed (409)."""
    return out(ctx, await _add(request, settings, ctx, recipe_id))


@get(FILE, opt=requires("recipes", "read"), tags=["recipes"], media_type="application/pdf")
async def api_document_file(
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    document_id: FromPath[UUID],
) -> Stream:
    """The document's file as stored (its own type: PDF, PNG or JPEG), streamed; the transfer
    stops short when its bytes no longer match the SHA-256 it was stored with (sent in
    ``X-Content-SHA256``)."""
    return await _download(ctx, recipe_id, document_id)


@post(REMOVE, opt=requires("recipes", "edit"), tags=["recipes"], status_code=200)
async def api_remove_document(
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    document_id: FromPath[UUID],
    data: JSONBody[DocumentRemove],
) -> DocumentOut:
    """Remove the document, with a reason: it is kept, marked removed, and no longer goes
    into a tech-transfer package. One removed already is a 409."""
    view = await documents.remove_document(ctx, recipe_id, document_id, data.reason)
    return out(ctx, view)


api = [api_documents, api_add_document, api_document_file, api_remove_document]


async def _again(
    request: Request[Any, Any, Any],
    settings: Settings,
    ctx: TenantContext,
    recipe_id: UUID,
    exc: AppError,
    refused: str,
) -> Template:
    """The recipe page with what went wrong in the ``refused`` form (the document's id, or
    "add"), its text fields kept."""
    if exc.status_code not in (409, 422):
        raise exc
    form = await form_data(request)
    details = exc.details if isinstance(exc.details, dict) else {}
    kept = {k: v for k, v in form.items() if isinstance(v, str) and k != "_csrf_token"}
    problem = {**kept, "message": exc.message, "field": details.get("field"), "form": refused}
    return await render_recipe_page(
        request,
        ctx,
        recipe_id,
        status=exc.status_code,
        document_problem=problem,
        upload_max_bytes=settings.upload_max_bytes,
    )


@post(DOCUMENTS, opt=requires("recipes", "edit", uploads=True), include_in_schema=False)
async def add_document_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
) -> Redirect | Template:
    try:
        await _add(request, settings, ctx, recipe_id)
    except AppError as exc:
        return await _again(request, settings, ctx, recipe_id, exc, "add")
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}#documents", status_code=303)


@get(FILE, opt=requires("recipes", "read"), include_in_schema=False)
async def document_file(
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    document_id: FromPath[UUID],
) -> Stream:
    return await _download(ctx, recipe_id, document_id)


@post(REMOVE, opt=requires("recipes", "edit"), include_in_schema=False)
async def remove_document_form(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    ctx: NamedDependency[TenantContext],
    recipe_id: FromPath[UUID],
    document_id: FromPath[UUID],
) -> Redirect | Template:
    form = await form_data(request)
    try:
        await documents.remove_document(ctx, recipe_id, document_id, _text(form, "reason"))
    except AppError as exc:
        return await _again(request, settings, ctx, recipe_id, exc, str(document_id))
    return Redirect(f"/t/{ctx.slug}/recipes/{recipe_id}#documents", status_code=303)


pages = [add_document_form, document_file, remove_document_form]
