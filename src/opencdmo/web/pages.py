"""Page rendering: one handler, two renderings (full page, or the named block for htmx)."""

from __future__ import annotations

from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request
from litestar.response import Template

from opencdmo.access.service import can
from opencdmo.errors import ValidationFailed
from opencdmo.tenancy.service import user_tenants
from opencdmo.web.principal import principal_of

# The menu shows only what the member's roles open.
NAVIGATION = (
    ("hub", "read"),
    ("hub", "install"),
    ("hub", "fork"),
    ("hub", "approve_publication"),
    ("hub", "publish"),
    ("recipes", "read"),
    ("recipes", "edit"),
    ("recipes", "submit"),
    ("recipes", "approve"),
    ("members", "read"),
    ("audit", "read"),
    ("tokens", "use"),
)


async def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    principal = principal_of(request.scope)
    member_of = principal.session.member_of if principal.session else ()
    allowed: set[str] = set()
    if principal.ctx is not None:
        for obj, act in NAVIGATION:
            if await can(principal.ctx, obj, act):
                allowed.add(f"{obj}:{act}")
    base = {
        "allowed": allowed,
        "principal": principal,
        "actor": principal.actor,
        "ctx": principal.ctx,
        "tenants": await user_tenants(member_of),
        "request": request,
    }
    base.update(context)
    if block and request.headers.get("hx-request") and not request.headers.get("hx-boosted"):
        return HTMXBlockTemplate(
            template_name=template,
            block_name=block,
            context=base,
            status_code=status_code,
            headers=headers,
        )
    return Template(template_name=template, context=base, status_code=status_code, headers=headers)


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
