"""UN/ECE Recommendation 20 unit codes in words, for people and for the FSMA 204 sheet.

Products carry the code (``C62``, ``CS``, ``KGM``); a consumer or an inspector reads
"units", "cases", "kilograms". Unknown codes are shown as the code itself, said so.
"""

from __future__ import annotations

__all__ = ["UNIT_WORDS", "quantity_words", "unit_words"]

# code -> (one, many)
UNIT_WORDS: dict[str, tuple[str, str]] = {
    "C62": ("unit", "units"),
    "H87": ("piece", "pieces"),
    "EA": ("each", "each"),
    "CS": ("case", "cases"),
    "CT": ("carton", "cartons"),
    "BX": ("box", "boxes"),
    "PK": ("pack", "packs"),
    "PA": ("packet", "packets"),
    "BG": ("bag", "bags"),
    "BO": ("bottle", "bottles"),
    "CR": ("crate", "crates"),
    "PX": ("pallet", "pallets"),
    "KT": ("kit", "kits"),
    "TRAY": ("tray", "trays"),
    "KGM": ("kilogram", "kilograms"),
    "GRM": ("gram", "grams"),
    "TNE": ("tonne", "tonnes"),
    "LBR": ("pound", "pounds"),
    "ONZ": ("ounce", "ounces"),
    "LTR": ("litre", "litres"),
    "MLT": ("millilitre", "millilitres"),
    "GLL": ("US gallon", "US gallons"),
    "P1": ("percent", "percent"),
    "CEL": ("degree Celsius", "degrees Celsius"),
    "FAH": ("degree Fahrenheit", "degrees Fahrenheit"),
    "KEL": ("kelvin", "kelvin"),
}


def unit_words(code: str, count: float | None = None) -> str:
    """The unit in words (plural unless ``count`` is 1)."""
    words = UNIT_WORDS.get(code.upper())
    if words is None:
        return f"{code} (UN/ECE unit code)"
    return words[0] if count == 1 else words[1]


def quantity_words(count: float, code: str) -> str:
    """``12 cases``, ``1 kilogram``, ``0.5 litres``."""
    shown = f"{count:g}"
    return f"{shown} {unit_words(code, count)}"
