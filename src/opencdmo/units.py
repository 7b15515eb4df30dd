"""Quantities as people write them: the UCUM codes content stores, shown as a scientist reads
them (``Cel`` as °C, ``10*6/mL`` as 10⁶ cells/mL, ``{bead}/{cell}`` as beads per cell), and
numbers with sensible precision (``100000000000000.0`` as 1 × 10¹⁴).

Content stores UCUM's case-sensitive codes (hub_content/schema/common.schema.json keeps the
closed list); this table is the one place they are given their display, and a test keeps it
covering that list exactly. Powers of ten count cells in this content (total and viable
cells, densities), so ``10*6`` reads "10⁶ cells".
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

DISPLAY: Final[dict[str, str]] = {
    "1": "",
    "%": "%",
    "Cel": "°C",
    "K/min": "K/min",
    "s": "s",
    "min": "min",
    "h": "h",
    "d": "days",
    "uL": "µL",
    "mL": "mL",
    "L": "L",
    "mL/min": "mL/min",
    "L/min": "L/min",
    "mL/cm2": "mL/cm²",
    "/d": "per day",
    "ug": "µg",
    "mg": "mg",
    "g": "g",
    "kg": "kg",
    "g/g": "g/g",
    "g/L": "g/L",
    "mg/mL": "mg/mL",
    "ug/mL": "µg/mL",
    "ng/mL": "ng/mL",
    "pg/mL": "pg/mL",
    "ng/{dose}": "ng per dose",
    "mmol/L": "mmol/L",
    "umol/L": "µmol/L",
    "mol/L": "mol/L",
    "mosm/kg": "mOsm/kg",
    "U": "U",
    "U/mL": "U/mL",
    "[iU]": "IU",
    "[iU]/mL": "IU/mL",
    "[pH]": "pH",
    "mS/cm": "mS/cm",
    "bar": "bar",
    "mbar": "mbar",
    "Pa": "Pa",
    "[g]": "× g",
    "/min": "per min",
    "/s": "per s",
    "deg": "°",
    "W/m3": "W/m³",
    "m/s": "m/s",
    "cm/h": "cm/h",
    "cm": "cm",
    "um": "µm",
    "cm2": "cm²",
    "m2": "m²",
    "L/m2": "L/m²",
    "L/(m2.h)": "L/(m²·h)",
    "L/(m2.h.bar)": "L/(m²·h·bar)",
    "/cm2": "per cm²",
    "10*6/cm2": "10⁶ cells/cm²",
    "10*6": "10⁶ cells",
    "10*9": "10⁹ cells",
    "10*6/mL": "10⁶ cells/mL",
    "10*6/kg": "10⁶ cells/kg",
    "/m3": "per m³",
    "{copies}/{cell}": "copies per cell",
    "{bead}/{cell}": "beads per cell",
    "{bead}": "beads",
    "{events}": "events",
    "{droplets}": "droplets",
    "{vg}/mL": "vg/mL",
    "{cp}/mL": "capsids/mL",
    "{TU}/mL": "TU/mL",
    "{TU}/{cell}": "TU per cell",
    "{TCID50}/mL": "TCID₅₀/mL",
    "{vg}/{IU}": "vg per IU",
    "{vg}/{cp}": "vg per capsid",
    "{EU}/mL": "EU/mL",
    "{mAU}": "mAU",
    "{CV}": "column volumes",
    "{MV}/min": "membrane volumes/min",
    "{CFU}/mL": "CFU/mL",
    "[ppm]": "ppm",
    "{bag}": "bags",
    "{vessel}": "vessels",
    "{vial}": "vials",
    "{kit}": "kits",
    "{set}": "sets",
    "{filter}": "filters",
    "{column}": "columns",
    "{module}": "modules",
    "{flask}": "flasks",
    "{tube}": "tubes",
    "{syringe}": "syringes",
    "{dose}": "doses",
}
# Units written without a space after the number: the degree of angle (30°). The SI brochure
# puts a space before every other unit symbol, °C and % included (37 °C, 80 %).
_UNSPACED: Final = frozenset({"deg"})


def unit(code: str | None) -> str:
    """A UCUM code as people write it; a code outside the table is shown as stored."""
    if not code:
        return ""
    return DISPLAY.get(code, code)


def number(value: object, digits: int = 6) -> str:
    """A number with sensible precision: at most ``digits`` significant digits, no trailing
    zeros, thousands grouped, scientific notation (1.5 × 10⁹) from a million up and below a
    thousandth. Booleans and text are shown as they are."""
    if isinstance(value, bool):
        return str(value)
    if not isinstance(value, int | float | Decimal):
        return "" if value is None else str(value)
    if not isinstance(value, int) and not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(float(value))
    if magnitude >= 1_000_000 or magnitude < 0.001:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        mantissa = _trim(mantissa)
        power = f"10{str(int(exponent)).translate(_SUPERSCRIPT)}"
        return power if mantissa == "1" else f"{mantissa} × {power}"
    if isinstance(value, int):
        return f"{value:,}" if magnitude >= 10_000 else str(value)
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    text = _trim(f"{float(value):.{decimals}f}")
    whole, _, fraction = text.partition(".")
    if abs(int(whole)) >= 10_000:
        whole = f"{int(whole):,}"
    return f"{whole}.{fraction}" if fraction else whole


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _suffix(code: str | None) -> str:
    """What follows a number: `` °C``, ``°``, `` × 10⁶ cells/mL`` (a power of ten multiplies)."""
    written = unit(code)
    if not written or code in _UNSPACED:
        return written
    return f" × {written}" if written.startswith("10") else f" {written}"


def quantity(value: object, code: str | None) -> str:
    """A value with its unit: ``37 °C``, ``2.5 × 10⁹ cells``, ``3 beads per cell``."""
    shown = number(value)
    return f"{shown}{_suffix(code)}" if shown else ""


def limits(low: object, high: object, code: str | None = None) -> str:
    """A range as people write it: ``0.8–1.2 × 10⁶ cells/mL``, ``≥ 70 %``, ``≤ 5 EU/mL``."""
    suffix = _suffix(code)
    if low is not None and high is not None:
        return f"{number(low)}–{number(high)}{suffix}"
    if low is not None:
        return f"≥ {number(low)}{suffix}"
    if high is not None:
        return f"≤ {number(high)}{suffix}"
    return ""
