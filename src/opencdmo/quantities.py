"""Physical quantities in the units content uses: a lot in L can be consumed in mL, and an
impossible conversion (mL to g, vials to bags) is a clear error.

One pint registry serves the process, built on first use with Decimal magnitudes, and taught
what UCUM has and pint lacks, so that every code of ``units.DISPLAY`` is a pint unit:

- each UCUM annotation (``{vial}``, ``{bag}``, ``{cell}``, ``{dose}``, ...) is a countable unit
  of its own dimension: a vial is not a bag, and a count of beads is not a number of cells;
- ``10*6`` and ``10*9`` are dimensionless multiples (10⁶, 10⁹), so 1 × 10⁹ = 1000 × 10⁶;
- ``[iU]`` (international unit), ``[pH]``, ``[g]`` (relative centrifugal force) and ``osm``
  (osmole) each have a dimension of their own: they convert to nothing else;
- ``Cel`` is pint's degree Celsius, an offset unit: 37 Cel converts to 310.15 K, and adding
  two Celsius temperatures is refused by pint;
- ``%``, ``[ppm]`` and ``1`` are dimensionless, ``U`` is the enzyme unit (µmol/min).

Codes are read with the part of UCUM's grammar the list uses (products with ``.``, quotients
with ``/`` read left to right, a leading ``/``, parentheses, an exponent written after a unit
as in ``cm2``, metric prefixes p n u m c d k M G); anything else is refused naming the code.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, localcontext
from functools import cache, lru_cache
from typing import Any, Final, cast

import pint

from opencdmo import units
from opencdmo.errors import ValidationFailed

# Significant digits a converted value keeps: enough for any lab quantity, few enough that
# a round trip through a repeating factor (1 min is 0.01666… h) comes back exact.
SIGNIFICANT: Final = 15

_TOKEN: Final = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|10\*\d+|[A-Za-z%]+|\d+|[./()]")
_PREFIXES: Final = {
    "p": "pico",
    "n": "nano",
    "u": "micro",
    "m": "milli",
    "c": "centi",
    "d": "deci",
    "k": "kilo",
    "M": "mega",
    "G": "giga",
}
# Units that take a metric prefix (mL, kg, mmol, mS, cm, mbar, ...).
_METRIC: Final = {
    "g": "gram",
    "L": "liter",
    "m": "meter",
    "s": "second",
    "mol": "mole",
    "osm": "osmole",
    "S": "siemens",
    "bar": "bar",
    "Pa": "pascal",
    "W": "watt",
    "K": "kelvin",
    "U": "enzyme_unit",
}
# Units taken as they are, looked up before a prefix is tried (min is a minute, d a day).
_PLAIN: Final = {
    **_METRIC,
    "1": "dimensionless",
    "%": "percent",
    "[ppm]": "ppm",
    "min": "minute",
    "h": "hour",
    "d": "day",
    "Cel": "degree_Celsius",
    "deg": "degree",
    "[iU]": "international_unit",
    "[pH]": "pH_value",
    "[g]": "relative_centrifugal_force",
}
_DEFINITIONS: Final = (
    "osmole = [osmotic_amount]",
    "international_unit = [international_unit]",
    "pH_value = [pH]",
    "relative_centrifugal_force = [relative_centrifugal_force]",
)
# What a code measures, in words, for the messages; a code not listed is described by the
# first code listed with its dimension (mg by g), then by its base dimensions.
_WHAT: Final = {
    "L": "a volume",
    "g": "a mass",
    "s": "a time",
    "K": "a temperature",
    "m": "a length",
    "m2": "an area",
    "/m3": "a number per volume",
    "mol": "an amount of substance",
    "mol/L": "a concentration",
    "g/L": "a mass concentration",
    "osm": "an amount of osmotically active particles",
    "mosm/kg": "an osmolality",
    "L/min": "a flow",
    "L/m2": "a volume per area",
    "mL/cm2": "a volume per area",
    "L/(m2.h)": "a flux (volume per area and time)",
    "L/(m2.h.bar)": "a permeability (flux per pressure)",
    "/s": "a rate per time",
    "K/min": "a rate of temperature change",
    "m/s": "a speed",
    "bar": "a pressure",
    "U": "an enzyme activity",
    "U/mL": "an enzyme activity per volume",
    "mS/cm": "a conductivity",
    "W/m3": "a power per volume",
    "1": "a dimensionless number",
    "/g": "a number per mass",
    "/m2": "a number per area",
    "[iU]": "an amount in international units",
    "[iU]/mL": "an amount in international units per volume",
    "[pH]": "a pH",
    "[g]": "a relative centrifugal force",
}
_BASE_WORDS: Final = {
    "[length]": "length",
    "[mass]": "mass",
    "[time]": "time",
    "[temperature]": "temperature",
    "[substance]": "amount of substance",
    "[current]": "electric current",
    "[luminosity]": "luminosity",
}


class _Vocabulary:
    """The registry and what it knows of the content's codes."""

    def __init__(self) -> None:
        self.registry: pint.UnitRegistry[Decimal] = pint.UnitRegistry(
            non_int_type=Decimal, cache_folder=None
        )
        for definition in _DEFINITIONS:
            self.registry.define(definition)
        self.annotations: dict[str, str] = {}  # "{vial}" -> pint unit name
        self.powers: dict[str, str] = {}  # "10*6" -> pint unit name
        self.count_words: dict[str, tuple[str, str]] = {}  # "[annotation_vial]" -> plural, one
        for code in units.DISPLAY:
            for token in _TOKEN.findall(code):
                if token.startswith("{") and token not in self.annotations:
                    self._define_annotation(token)
                elif token.startswith("10*") and token not in self.powers:
                    name = f"ucum_ten_pow_{token[3:]}"
                    self.registry.define(f"{name} = 1e{token[3:]}")
                    self.powers[token] = name
        self.words: dict[Any, str] = {}
        for code, what in _WHAT.items():
            self.words.setdefault(self._dimensionality(code), what)

    def _define_annotation(self, token: str) -> None:
        inner = token[1:-1]
        name = "annotation_" + re.sub(r"\W", "_", inner)
        if any(existing == name for existing in self.annotations.values()):
            raise ValueError(f"two annotations read as {name}")  # a content error, caught by tests
        self.registry.define(f"{name} = [{name}]")
        self.annotations[token] = name
        self.count_words[f"[{name}]"] = (units.DISPLAY.get(token, inner), inner)

    def _dimensionality(self, code: str) -> Any:
        return _parse(self, code).dimensionality


@cache
def _vocabulary() -> _Vocabulary:
    return _Vocabulary()


def registry() -> pint.UnitRegistry[Decimal]:
    """The process's one registry (built on first use)."""
    return _vocabulary().registry


def _unknown(code: str) -> ValidationFailed:
    return ValidationFailed(f"{code!r} is not a unit this application knows")


def _parse(vocabulary: _Vocabulary, code: str) -> pint.Unit:
    tokens = _TOKEN.findall(code)
    if not code or "".join(tokens) != code:
        raise _unknown(code)
    position = 0

    def atom(token: str) -> Any:
        reg = vocabulary.registry
        if token in vocabulary.annotations:
            return reg.Unit(vocabulary.annotations[token])
        if token in vocabulary.powers:
            return reg.Unit(vocabulary.powers[token])
        if token in _PLAIN:
            return reg.Unit(_PLAIN[token])
        prefix, rest = token[:1], token[1:]
        if prefix in _PREFIXES and rest in _METRIC:
            return reg.Unit(_PREFIXES[prefix] + _METRIC[rest])
        raise _unknown(code)

    def component() -> Any:
        nonlocal position
        if position >= len(tokens):
            raise _unknown(code)
        part = tokens[position]
        position += 1
        if part == "(":
            inner = term()
            if position >= len(tokens) or tokens[position] != ")":
                raise _unknown(code)
            position += 1
            return inner
        if part in {")", ".", "/"}:
            raise _unknown(code)
        unit = atom(part)
        if position < len(tokens) and tokens[position].isdigit() and part[-1:].isalpha():
            unit = unit ** int(tokens[position])
            position += 1
        return unit

    def term() -> Any:
        nonlocal position
        if tokens[position : position + 1] == ["/"]:
            position += 1
            result = vocabulary.registry.Unit("dimensionless") / component()
        else:
            result = component()
        while position < len(tokens) and tokens[position] in {".", "/"}:
            operator = tokens[position]
            position += 1
            result = result * component() if operator == "." else result / component()
        return result

    result = term()
    if position != len(tokens) or not isinstance(result, pint.Unit):
        raise _unknown(code)
    return result


@lru_cache(maxsize=1024)
def unit(code: str) -> pint.Unit:
    """The pint unit of a UCUM code of the content (``mL/min``, ``10*6/mL``, ``{vial}``);
    a code outside the grammar, or naming a unit or annotation content does not use, is a
    ValidationFailed naming the code."""
    vocabulary = _vocabulary()
    try:
        return _parse(vocabulary, code)
    except pint.PintError as error:  # pragma: no cover - the parser only names defined units
        raise _unknown(code) from error


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
        raise ValidationFailed(f"{value!r} is not a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def quantity(value: Decimal | float | int, code: str) -> pint.Quantity[Decimal]:
    """``value`` in the unit ``code``, a pint Quantity with a Decimal magnitude (a float is
    taken as it is written: 0.1 is Decimal("0.1"))."""
    return registry().Quantity(_decimal(value), unit(code))


def compatible(from_code: str, to_code: str) -> bool:
    """Whether a value in ``from_code`` can be given in ``to_code`` (L and mL yes, {vial} and
    {bag} no). Unknown codes are a ValidationFailed."""
    return bool(unit(from_code).is_compatible_with(unit(to_code)))


def convert(value: Decimal | float | int, from_code: str, to_code: str) -> Decimal:
    """``value`` in ``from_code`` given in ``to_code``, as a Decimal.

    The arithmetic is decimal throughout (pint's factors are Decimal in this registry, so
    2 L is exactly 2000 mL and 37 °C exactly 310.15 K); the result is rounded to 15
    significant digits, so a repeating factor (1 min is 0.0166… h) still round-trips, and
    written without trailing zeros. An impossible conversion is a ValidationFailed that says
    in words what each unit measures."""
    if not compatible(from_code, to_code):
        raise ValidationFailed(_impossible(value, from_code, to_code))
    with localcontext() as context:
        context.prec = 34
        magnitude = quantity(value, from_code).to(unit(to_code)).magnitude
    return _tidy(Decimal(magnitude))


def on_hand(value: Decimal | float | int, code: str) -> pint.Quantity[Decimal]:
    """A quantity on hand (a lot's remaining amount, a count of vials): zero or more, and a
    finite number; otherwise a ValidationFailed."""
    amount = _decimal(value)
    if not amount.is_finite():
        raise ValidationFailed(f"A quantity on hand must be a number, not {value}")
    if amount < 0:
        raise ValidationFailed(
            f"A quantity on hand cannot be negative: {units.quantity(amount, code)}"
        )
    return quantity(amount, code)


def describe(code: str) -> str:
    """What a code measures, in words: ``a volume`` for mL, ``a count of vials`` for {vial},
    ``a number of beads per cell`` for {bead}/{cell}."""
    vocabulary = _vocabulary()
    if code in _WHAT:
        return _WHAT[code]
    dimensionality = unit(code).dimensionality
    if dimensionality in vocabulary.words:
        return vocabulary.words[dimensionality]
    over: list[str] = []
    under: list[str] = []
    counts = False
    for name, exponent in dimensionality.items():
        power = cast(float, exponent)
        counts = counts or (power > 0 and name in vocabulary.count_words)
        (over if power > 0 else under).append(_word(vocabulary, name, power))
    text = " × ".join(over) or "a number"
    if under:
        text = f"{text} per {' × '.join(under)}"
    return f"a number of {text}" if counts and under else f"a count of {text}" if counts else text


def _word(vocabulary: _Vocabulary, name: str, power: Any) -> str:
    """A base dimension in words: plural for a count above the line (beads), singular below
    (per cell); volume and area for length cubed and squared."""
    exponent = abs(power)
    if name in vocabulary.count_words:
        many, one = vocabulary.count_words[name]
        word = many if power > 0 else one
    elif name == "[length]" and exponent in {2, 3}:
        return "area" if exponent == 2 else "volume"
    else:
        word = _BASE_WORDS.get(name, name.strip("[]").replace("_", " "))
    return word if exponent == 1 else f"{word}^{exponent}"


def _label(code: str) -> str:
    return units.unit(code) or "a plain number"


def _is(label: str) -> str:
    last = label.split(" ")[-1]
    return "are" if len(last) > 2 and last.isalpha() and last.endswith("s") else "is"


def _impossible(value: object, from_code: str, to_code: str) -> str:
    source, target = _label(from_code), _label(to_code)
    return (
        f"{units.quantity(value, from_code)} cannot be given in {units.unit(to_code) or to_code}: "
        f"{source} {_is(source)} {describe(from_code)}, "
        f"{target} {_is(target)} {describe(to_code)}"
    )


def _tidy(value: Decimal) -> Decimal:
    """``value`` to SIGNIFICANT digits, without trailing zeros or an exponent for integers."""
    if not value.is_finite():
        return value
    if value.is_zero():
        return Decimal(0)
    with localcontext() as context:
        context.prec = SIGNIFICANT
        rounded = (+value).normalize()
    exponent = rounded.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        rounded = rounded.quantize(Decimal(1), context=Context(prec=rounded.adjusted() + 1))
    return rounded
