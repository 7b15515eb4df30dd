"""Page rendering: one handler, two renderings (full page, or the named block for htmx)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Litestar, Request
from litestar.response import Template

from opencdmo.errors import ValidationFailed
from opencdmo.fields import humanise
from opencdmo.web import flash as flashes

PageContext = Callable[[Request[Any, Any, Any]], Awaitable[dict[str, Any]]]


async def _bare(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"request": request}


def page_context(app: Litestar) -> PageContext:
    """What every page gets besides its own context (who asks, the menu they may open, their
    tenants): provided by the adapter the app wires in (``webapp.page_context``), so that the
    kit needs nothing above it."""
    provider = app.state.get(PAGE_CONTEXT)
    return provider if provider is not None else _bare


PAGE_CONTEXT = "page_context"


async def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    flash: str | None = None,
    **context: Any,
) -> Template:
    """The page, or its ``block`` for an htmx request. Messages to show once (``flash``, and
    those a redirect left in the flash cookie) come as toasts: in the page, or as an
    ``HX-Trigger`` header for an htmx request."""
    base = await page_context(request.app)(request)
    base.update(context)
    carried = flashes.pending(request)
    shown = [*carried, *([flashes.Flash(flash)] if flash else [])]
    headers = dict(headers or {})
    htmx = flashes.is_htmx(request)
    if shown and htmx:
        headers["HX-Trigger"] = flashes.trigger_header(shown)
    base["flashes"] = [] if htmx else shown
    signer = flashes.signer_of(request)
    cookies = [signer.expired()] if carried and signer is not None else None
    if block and htmx:
        return HTMXBlockTemplate(
            template_name=template,
            block_name=block,
            context=base,
            status_code=status_code,
            headers=headers or None,
            cookies=cookies,
        )
    return Template(
        template_name=template,
        context=base,
        status_code=status_code,
        headers=headers or None,
        cookies=cookies,
    )


FORM_FIELDS_MAX = 1000
FORM_VALUE_MAX = 100_000  # characters; the fields' own limits are checked where they are read


async def form_data(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Form fields as a plain dict (repeated fields as lists); a 422 for more than
    FORM_FIELDS_MAX fields or a value longer than FORM_VALUE_MAX characters."""
    form = await request.form()
    data: dict[str, Any] = {}
    for key in form:
        values = form.getall(key)
        for value in values:
            if isinstance(value, str) and len(value) > FORM_VALUE_MAX:
                raise ValidationFailed(
                    f"The field '{key[:80]}' is {len(value)} characters long; at most "
                    f"{FORM_VALUE_MAX} are accepted.",
                    details={"field": key[:80]},
                )
        data[key] = values if len(values) > 1 else values[0]
        if len(data) > FORM_FIELDS_MAX:
            raise ValidationFailed(f"The form has more than {FORM_FIELDS_MAX} fields.")
    return data


S = TypeVar("S", bound=msgspec.Struct)


async def form_struct(
    request: Request[Any, Any, Any], struct: type[S], values: dict[str, Any] | None = None
) -> tuple[S, dict[str, Any]]:
    """The form parsed into the same typed struct as the API body, with the same limits and
    the same messages (a 422 naming the field); also the typed values, to show the form
    again as it was sent. Fields the struct does not have (the CSRF token, buttons) are left
    out; a field the struct types as a list takes every value sent under its name.
    ``values``: the fields as the page worked them out from the form, instead of the form."""
    data = await form_data(request) if values is None else values
    fields = {f.name: f for f in msgspec.structs.fields(struct)}
    typed: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            continue
        value = data[name]
        many = msgspec.inspect.type_info(field.type)
        if isinstance(many, msgspec.inspect.ListType):
            typed[name] = value if isinstance(value, list) else [value]
        else:
            typed[name] = value[-1] if isinstance(value, list) else value
    try:
        return msgspec.convert(typed, type=struct, strict=False), typed
    except msgspec.ValidationError as exc:
        message = humanise(str(exc))
        raise ValidationFailed(message, details={"field": message.split(":", 1)[0]}) from None
