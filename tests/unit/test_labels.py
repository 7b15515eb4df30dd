"""Container labels: the barcode and QR code SVGs are safe to embed and carry what they say,
refused texts say why, and the label template escapes every field."""

from __future__ import annotations

import re
from datetime import date
from uuid import UUID

import pytest
import segno
from barcode.charsets import code128
from lxml import etree

from opencdmo.errors import ValidationFailed
from opencdmo.inventory.labels import (
    BARCODE_MAX,
    ContainerLabel,
    code128_svg,
    payload,
    qr_svg,
)
from opencdmo.web.templating import build_environment

SVG = "{http://www.w3.org/2000/svg}"
CONTAINER = UUID("0b8e6c1e-3f1a-4c2e-9d7a-5b6f1e2d3c4a")
START_B = "11010010000"  # bar/space widths 2 1 1 2 1 4 (ISO/IEC 15417 table 1, value 104)
STOP = "1100011101011"  # 2 3 3 1 1 1 2, with the termination bar


def _xml(svg: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(svg.encode(), parser)
    assert root.getroottree().docinfo.doctype == ""
    return root


def _modules(svg: str) -> str:
    """The barcode's modules read back from its SVG bars: 1 for a bar, 0 for a space."""
    bars = [
        (float(r.get("x", "")), float(r.get("width", "")))
        for r in _xml(svg).iter(f"{SVG}rect")
        if r.get("fill") == "black"
    ]
    start = bars[0][0]
    module = start / 10  # the quiet zone is 10 modules (rounded widths would drift)
    cells = ["0"] * round((bars[-1][0] + bars[-1][1] - start) / module)
    for x, width in bars:
        first = round((x - start) / module)
        cells[first : first + round(width / module)] = "1" * round(width / module)
    return "".join(cells)


def _label(**changes: object) -> ContainerLabel:
    fields: dict[str, object] = {
        "container_id": CONTAINER,
        "lot_number": "L-2025-014",
        "material_name": "Human serum albumin 25 %",
        "material_code": "MAT-HSA-25",
        "quantity": "500 mL",
        "expiry": date(2026, 3, 31),
        "storage": "2–8 °C, protect from light",
        "status": "quarantine",
        "received": date(2025, 4, 2),
    } | changes
    return ContainerLabel(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("svg", "name"),
    [
        (code128_svg(str(CONTAINER)), f"Barcode: {CONTAINER}"),
        (qr_svg(payload(_label())), f"QR code: opencdmo:container:{CONTAINER}"),
    ],
    ids=["barcode", "qr"],
)
def test_the_svgs_embed_safely(svg: str, name: str) -> None:
    assert not svg.startswith("<?xml") and "<!DOCTYPE" not in svg and "<!ENTITY" not in svg
    root = _xml(svg)
    assert root.tag in {f"{SVG}svg", "svg"}
    assert root.get("role") == "img" and root.get("aria-label") == name
    assert re.fullmatch(r"0 0 [\d.]+ [\d.]+", root.get("viewBox", ""))
    assert root.get("width", "").endswith("mm") and root.get("height", "").endswith("mm")
    assert "style=" not in svg, "the Content-Security-Policy refuses style attributes"
    assert " id=" not in svg, "a page holds many labels"


def test_the_barcode_fits_the_label() -> None:
    root = _xml(code128_svg(str(CONTAINER)))
    assert float(root.get("width", "").removesuffix("mm")) == pytest.approx(48, abs=0.01)
    assert root.get("height") == "6.000mm"
    short = _xml(code128_svg("A1"))
    assert float(short.get("width", "").removesuffix("mm")) < 48, "a short text keeps its bars"


def test_the_bars_carry_the_text_and_its_check_symbol() -> None:
    text = "PJJ123C"  # all code set B (three digits do not switch to C)
    bars = _modules(code128_svg(text))
    assert bars.startswith(START_B) and bars.endswith(STOP)
    symbols = [bars[i : i + 11] for i in range(0, len(bars) - len(STOP), 11)]
    values = [code128.CODES.index(symbol) for symbol in symbols]
    assert values[0] == 104
    assert "".join(chr(v + 32) for v in values[1:-1]) == text, "code set B: value = ASCII - 32"
    weighted = 104 + sum(i * (ord(c) - 32) for i, c in enumerate(text, start=1))
    assert weighted % 103 == 55 == values[-1]


def test_a_uuid_is_one_barcode() -> None:
    bars = _modules(code128_svg(str(CONTAINER)))
    assert bars.startswith(START_B) and bars.endswith(STOP)
    symbols = [bars[i : i + 11] for i in range(0, len(bars) - len(STOP), 11)]
    assert len(symbols) == 1 + 36 + 1, "start, 36 characters in code set B, check"
    values = [code128.CODES.index(symbol) for symbol in symbols]
    assert "".join(chr(v + 32) for v in values[1:-1]) == str(CONTAINER)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs some text"),
        ("x" * (BARCODE_MAX + 1), f"at most {BARCODE_MAX} characters; this text has 49"),
        ("LOT\t1", r"character 4 \(U\+0009\) is a control character"),
        ("LOT-\x7f", r"character 5 \(U\+007F\) is a control character"),
        ("Lot é", r"character 5 \(U\+00E9\) is a character outside ASCII"),
    ],
    ids=["empty", "long", "tab", "delete", "accent"],
)
def test_a_barcode_refuses_what_code128_cannot_carry(text: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        code128_svg(text)


def test_the_longest_text_is_accepted() -> None:
    assert code128_svg("~" * BARCODE_MAX).startswith("<svg")


def test_the_qr_code_draws_segnos_matrix() -> None:
    text = payload(_label())
    assert text == f"opencdmo:container:{CONTAINER}"
    qr = segno.make_qr(text, error="m", boost_error=False)
    assert (qr.version, qr.error, qr.mode) == (4, "M", "byte")
    expected = {
        (x, y)
        for y, row in enumerate(qr.matrix_iter(border=4))
        for x, dark in enumerate(row)
        if dark
    }
    root = _xml(qr_svg(text))
    assert root.get("viewBox") == "0 0 41 41", "33 modules and a 4-module quiet zone"
    drawn = next(p for p in root.iter(f"{SVG}path", "path") if p.get("stroke"))
    assert _dark_cells(drawn.get("d", "")) == expected


def _dark_cells(d: str) -> set[tuple[int, int]]:
    """The cells a segno path draws: each ``[Mm]x y hN`` is a run of N dark cells."""
    cells, x, y = set(), 0.0, 0.0
    for move, dx, dy, length in re.findall(r"([Mm])(-?[\d.]+) (-?[\d.]+)h(\d+)", d):
        x, y = (float(dx), float(dy)) if move == "M" else (x + float(dx), y + float(dy))
        cells |= {(int(x) + i, int(y - 0.5)) for i in range(int(length))}
        x += int(length)
    return cells


def test_a_qr_code_refuses_nothing_and_too_much() -> None:
    with pytest.raises(ValidationFailed, match="needs some text"):
        qr_svg("")
    with pytest.raises(ValidationFailed, match="cannot carry 5000 characters"):
        qr_svg("x" * 5000)


def _render(label: ContainerLabel) -> str:
    template = build_environment().from_string(
        '{% from "inventory/_label.html" import container_label %}'
        "{{ container_label(l, barcode, qr) }}"
    )
    return template.render(
        l=label, barcode=code128_svg(str(label.container_id)), qr=qr_svg(payload(label))
    )


def test_the_label_shows_the_container_and_escapes_its_fields() -> None:
    html = _render(_label(material_name="<script>alert(1)</script>", lot_number='L"1&2'))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "L&#34;1&amp;2" in html
    assert html.count("<svg") == 2 and html.count('role="img"') == 2, "the SVGs are markup"
    assert (
        '<span class="container-label-status container-label-status-quarantine">QUARANTINE</span>'
        in html
    )
    assert "2026-03-31" in html and "2025-04-02" in html and "500 mL" in html
    assert str(CONTAINER) in html


def test_a_label_without_expiry_says_so() -> None:
    html = _render(_label(expiry=None, status="released"))
    assert "Exp <strong>none</strong>" in html
    assert ">RELEASED</span>" in html
