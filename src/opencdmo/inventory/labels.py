"""Container labels: a Code 128 barcode and a QR code carrying the container id, as inline SVG
for a printable label page of 50 x 25 mm (``frontend/templates/inventory/_label.html``).

The symbols are made by python-barcode and segno; this module only chooses their sizes and
makes their SVG safe to embed in a page: no XML declaration or doctype, a ``viewBox`` so CSS
can size it, width and height in mm, ``role="img"`` with an ``aria-label`` saying what it
carries, colours as presentation attributes (the Content-Security-Policy refuses ``style``
attributes), no ``id`` (a page holds many labels).

The barcode has no human-readable text of its own: the label prints the id under it as
HTML text, in the page's font and escaped like every other field.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Final
from uuid import UUID

import segno
from barcode import Code128  # type: ignore[import-untyped]
from barcode.writer import SVGWriter  # type: ignore[import-untyped]
from lxml import etree

from opencdmo.errors import ValidationFailed

BARCODE_MAX: Final = 48
"""The longest text a barcode carries: more no longer scans on a 50 mm label."""
BARCODE_WIDTH_MM: Final = 48.0
"""The width of the barcode, quiet zones included: a 50 mm label less 1 mm each side."""
BARCODE_HEIGHT_MM: Final = 6.0
MODULE_MAX_MM: Final = 0.33
"""A short text gets bars no wider than this (a common X dimension), not the whole width."""
QUIET_MODULES: Final = 10
"""The quiet zone each side of a Code 128 symbol, in modules (ISO/IEC 15417)."""
QR_SIZE_MM: Final = 14.0
QR_ERROR: Final = "M"
QR_BORDER: Final = 4
"""The quiet zone round a QR code, in modules (ISO/IEC 18004)."""
PAYLOAD_PREFIX: Final = "opencdmo:container:"

_PARSER: Final = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
)


@dataclass(frozen=True, slots=True)
class ContainerLabel:
    """What one container's label shows; ``quantity`` is already formatted with its unit
    (``"500 mL"``), ``status`` is the container's state key (quarantine, released...)."""

    container_id: UUID
    lot_number: str
    material_name: str
    material_code: str
    quantity: str
    expiry: date | None
    storage: str
    status: str
    received: date


def payload(label: ContainerLabel) -> str:
    """The QR code's text, ``opencdmo:container:<uuid>``. A scanner types what it reads into
    the focused field, so a label scanned into the app's scan field gives it a string that
    says what it is (a container) and which one (its id); the app resolves the id within the
    tenant, so the label carries nothing else (no tenant, host or lot data to go stale)."""
    return f"{PAYLOAD_PREFIX}{label.container_id}"


def code128_svg(text: str) -> str:
    """``text`` as a Code 128 barcode, inline SVG 48 mm wide (less for a short text) and 6 mm
    high, without human-readable text. Refuses text Code 128 cannot carry on a label."""
    _check_barcode_text(text)
    modules = len(Code128(text).build()[0])
    module = min(MODULE_MAX_MM, BARCODE_WIDTH_MM / (modules + 2 * QUIET_MODULES))
    options = {
        "module_width": module,
        "module_height": BARCODE_HEIGHT_MM,
        "quiet_zone": QUIET_MODULES * module,
        "margin_top": 0,
        "margin_bottom": 0,
        "write_text": False,
        "background": "white",
        "foreground": "black",
        "with_doctype": False,
        "compress": True,
    }
    svg = _parse(Code128(text, writer=SVGWriter()).render(options))
    width = module * (modules + 2 * QUIET_MODULES)
    for node in svg.iter():
        _unstyle(node)
    return _embeddable(svg, width, BARCODE_HEIGHT_MM, f"Barcode: {text}")


def qr_svg(text: str) -> str:
    """``text`` as a QR code with error correction M (not raised, so the version stays
    predictable) and a 4-module quiet zone, inline SVG 14 mm square."""
    if not text:
        raise ValidationFailed("A QR code needs some text to carry.")
    try:
        qr = segno.make_qr(text, error=QR_ERROR, boost_error=False)
    except segno.DataOverflowError:
        raise ValidationFailed(
            f"A QR code on a label cannot carry {len(text)} characters."
        ) from None
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        border=QR_BORDER,
        xmldecl=False,
        svgclass=None,
        lineclass=None,
        light="#fff",
        nl=False,
    )
    return _embeddable(_parse(out.getvalue()), QR_SIZE_MM, QR_SIZE_MM, f"QR code: {text}")


def _check_barcode_text(text: str) -> None:
    if not text:
        raise ValidationFailed("A barcode needs some text to carry.")
    if len(text) > BARCODE_MAX:
        raise ValidationFailed(
            f"A barcode on a label carries at most {BARCODE_MAX} characters; "
            f"this text has {len(text)}."
        )
    for position, char in enumerate(text, start=1):
        if not " " <= char <= "~":
            kind = "a control character" if char.isascii() else "a character outside ASCII"
            raise ValidationFailed(
                f"A barcode carries letters, digits, punctuation and spaces of ASCII only; "
                f"character {position} (U+{ord(char):04X}) is {kind}."
            )


def _parse(svg: bytes) -> etree._Element:
    return etree.fromstring(svg, _PARSER)


def _unstyle(node: etree._Element) -> None:
    """python-barcode writes ``style="fill:black;"`` and lengths in mm; the viewBox counts in
    mm, so lengths lose their unit and the fill becomes an attribute."""
    style = node.attrib.pop("style", None)
    if style:
        node.set("fill", style.removeprefix("fill:").rstrip(";"))
    node.attrib.pop("id", None)
    for name in ("x", "y", "width", "height"):
        value = node.get(name)
        if value and value.endswith("mm"):
            node.set(name, value.removesuffix("mm"))


def _embeddable(svg: etree._Element, width_mm: float, height_mm: float, name: str) -> str:
    view_width, view_height = svg.get("width"), svg.get("height")
    svg.attrib.pop("version", None)
    svg.set("viewBox", f"0 0 {view_width} {view_height}")
    svg.set("width", f"{width_mm:.3f}mm")
    svg.set("height", f"{height_mm:.3f}mm")
    svg.set("role", "img")
    svg.set("aria-label", name)
    return str(etree.tostring(svg, encoding="unicode"))
