"""Property-based fuzzing of the JSON API: bodies generated from each route's own body type
(right and wrong kinds of value, missing and unknown fields, boundary lengths), arbitrary
JSON and raw bytes, and query strings, sent in both tenants with ids of objects of both, on
every API route found in the app's route table. No answer may be a 5xx.

Derandomised, so CI runs the same examples every time.
"""

from __future__ import annotations

import datetime
import string
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.routes import HTTPRoute

from opencdmo.identity import service as identity
from opencdmo.tenancy import service as tenancy
from tests.conftest import PASSWORD, Browser, World
from tests.integration.export_flow import no_export_wait
from tests.integration.test_no_500 import json_routes
from tests.integration.test_routes_generic import FACTORIES, PARAM

__all__ = ["no_export_wait"]
# The export routes (GET .../record.xml, .../audit/export) answer 202 at once: no worker runs.
pytestmark = pytest.mark.usefixtures("no_export_wait")

FUZZ = settings(
    max_examples=250,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", "\x00", "\u200b", "1", "0", "-1", "9" * 400, "x" * 5000, "a@b@c"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Raw bodies: nested deeper than any decoder should follow, a key twice, not JSON at all.
RAW = st.builds(
    lambda n, inside: (b'{"content": %s}' if inside else b"%s") % (b"[" * n + b"]" * n),
    st.sampled_from([33, 200, 1000, 3000]) | st.integers(20, 5000),
    st.booleans(),
) | st.sampled_from([b'{"a": 1, "a": 2}', b"\xff\xfe", b"", b"[1,", b"1e999999"])
# Ids of real objects in both tenants (filled by the fixture), so that bodies reach the
# services and not only the decoder.
KNOWN: list[str] = []


def _text(kind: Any) -> st.SearchStrategy[str]:
    limits = [n for n in (kind.min_length, kind.max_length) if n is not None]
    near = [max(0, n + d) for n in limits for d in (-1, 0, 1)]
    sized = st.sampled_from(near).map(lambda n: "x" * n) if near else st.nothing()
    return st.text(max_size=20) | sized | st.sampled_from(KNOWN or [""])


def _shaped(kind: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the declared kind (near its limits), or now and then of any other kind."""
    if not depth:
        return _of(kind, depth)
    return st.integers(0, 9).flatmap(lambda n: JSON if n == 0 else _of(kind, depth))


def _of(kind: Any, depth: int) -> st.SearchStrategy[Any]:
    nested = depth + 1
    if isinstance(kind, mi.StructType):
        fields = {f.encode_name: _shaped(f.type, nested) for f in kind.fields if f.required}
        optional = {f.encode_name: _shaped(f.type, nested) for f in kind.fields if not f.required}
        extra = st.dictionaries(st.sampled_from(["colour", "__proto__", ""]), JSON, max_size=1)
        return st.builds(
            lambda a, b, c: {**a, **b, **c},
            st.fixed_dictionaries(fields),
            st.fixed_dictionaries({}, optional=optional),
            extra,
        )
    if isinstance(kind, mi.ListType):
        return st.lists(_shaped(kind.item_type, nested), max_size=3)
    if isinstance(kind, mi.DictType):
        return st.dictionaries(st.text(max_size=10), _shaped(kind.value_type, nested), max_size=3)
    if isinstance(kind, mi.UnionType):
        return st.one_of([_of(t, depth) for t in kind.types])
    if isinstance(kind, mi.LiteralType):
        return st.sampled_from(list(kind.values))
    if isinstance(kind, mi.StrType):
        return _text(kind)
    if isinstance(kind, mi.IntType):
        bounds = [b for b in (kind.ge, kind.le, kind.gt, kind.lt) if b is not None]
        return st.integers(-(2**40), 2**40) | st.sampled_from([*bounds, 0, 1, 2**31, -(2**63)])
    if isinstance(kind, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 1e308])
    if isinstance(kind, mi.BoolType):
        return st.booleans()
    if isinstance(kind, mi.NoneType):
        return st.none()
    if isinstance(kind, mi.UUIDType):
        return st.uuids().map(str) | st.sampled_from(KNOWN or [str(uuid.UUID(int=0))])
    if isinstance(kind, mi.DateTimeType):
        return st.datetimes(timezones=st.just(datetime.UTC)).map(str)
    return JSON


def _body(handler: Any) -> st.SearchStrategy[Any]:
    annotation = handler.parsed_fn_signature.parameters["data"].annotation
    try:
        kind = mi.type_info(annotation)
    except (TypeError, ValueError):
        return JSON | RAW
    return _of(kind, 0) | JSON | RAW


ROLES = [
    "tenant_admin",
    "process_engineer",
    "qa_approver",
    "qc_analyst",
    "production_operator",
    "production_supervisor",
    "materials_handler",
    "viewer",
]


@pytest.fixture(scope="module")
async def fuzz(app: Litestar, world: World) -> AsyncIterator[dict[str, Any]]:
    """Ids of objects of its own in both tenants, and a client signed in as a member of both
    with every role (so that requests pass the guards and reach the body checks and the
    services)."""
    email = f"fuzz-{uuid.uuid4().hex[:8]}@both.test"
    user = await identity.create_user(email, "Fuzz Member", PASSWORD)
    ids: dict[str, dict[str, str]] = {}
    for tenant, ctx in (("alpha", world.alpha), ("beta", world.beta)):
        await tenancy.add_member(ctx, user.id, ROLES)
        ids[tenant] = {name: await make(world, ctx) for name, make in FACTORIES.items()}
        # A member of its own, so that role and status changes touch no other test's persona.
        other = await identity.create_user(f"fuzzed-{uuid.uuid4().hex[:8]}@x.test", "F", PASSWORD)
        ids[tenant]["member_id"] = str(await tenancy.add_member(ctx, other.id, ["viewer"]))
        _, token = await identity.create_token(ctx, other.id, "fuzzed")
        ids[tenant]["token_id"] = str(token.id)
        ids[tenant] |= {"version": "1.0.0", "action": "arrange"}
        KNOWN.extend(v for k, v in ids[tenant].items() if k.endswith("_id"))
    client = Browser(app)
    assert (await client.login(email)).status_code == 303
    yield {"ids": ids, "client": client, "routes": json_routes(app)}
    await client.close()


@FUZZ
@given(data=st.data())
async def test_no_json_body_gets_a_5xx(fuzz: dict[str, Any], data: st.DataObject) -> None:
    path, method, handler = data.draw(st.sampled_from(fuzz["routes"]), label="route")
    tenant = data.draw(st.sampled_from(["alpha", "beta"]), label="tenant")
    own = data.draw(st.sampled_from(["alpha", "beta", "random"]), label="ids of")
    ids = fuzz["ids"].get(own, {})
    url = PARAM.sub(
        lambda m: tenant if m.group(1) == "slug" else ids.get(m.group(1), str(uuid.uuid4())),
        path,
    )
    body = data.draw(_body(handler), label="body")
    sent = {"content": body, "headers": {"content-type": "application/json"}}
    client = fuzz["client"]
    response = await (
        client.send(method, url, **sent)
        if isinstance(body, bytes)
        else (client.send(method, url, json=body))
    )
    assert response.status_code < 500, f"{method} {url} {body!r:.300}: {response.text:.300}"


QUERY_TEXT = st.text(max_size=12) | st.sampled_from(
    ["", "0", "-1", "1e9", "9999-12-31", "0001-01-01T00:00+14:00", "\x00", "x" * 300, "json"]
)
NOT_QUERY = {"ctx", "settings", "request", "data", "slug"}


def get_routes(app: Litestar) -> list[tuple[str, list[str]]]:
    """Every API GET route with the names of its query parameters."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/"):
            continue
        for handler in route.route_handlers:
            if "GET" not in handler.http_methods:
                continue
            params = handler.parsed_fn_signature.parameters
            names = [
                getattr(p.kwarg_definition, "query", None) or name
                for name, p in params.items()
                if name not in NOT_QUERY and name not in route.path_parameters
            ]
            found.append((route.path, names))
    return found


@FUZZ
@given(data=st.data())
async def test_no_query_gets_a_5xx(
    app: Litestar, fuzz: dict[str, Any], data: st.DataObject
) -> None:
    path, names = data.draw(st.sampled_from(get_routes(app)), label="route")
    tenant = data.draw(st.sampled_from(["alpha", "beta"]), label="tenant")
    ids = fuzz["ids"][data.draw(st.sampled_from(["alpha", "beta"]), label="ids of")]
    url = PARAM.sub(
        lambda m: tenant if m.group(1) == "slug" else ids.get(m.group(1), str(uuid.uuid4())),
        path,
    )
    query = data.draw(st.dictionaries(st.sampled_from(names or ["q"]), QUERY_TEXT), label="query")
    response = await fuzz["client"].get(url, params=query)
    assert response.status_code < 500, f"GET {url} {query!r:.300}: {response.text:.300}"
