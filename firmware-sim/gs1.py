"""GS1 identifiers and barcode data as scanners deliver them.

Check digits follow the GS1 General Specifications (mod 10, weights 3/1 from
the right). Company prefix 0614141 is the one GS1 uses in its own examples.
"""

from __future__ import annotations

__all__ = [
    "GS",
    "check_digit",
    "digital_link",
    "element_string",
    "gtin14",
    "pack_temperature",
    "sscc",
]

GS = "\x1d"  # FNC1 as transmitted by scanners
COMPANY_PREFIX = "0614141"
# AIs whose length is fixed (no GS needed after them), per GS1 Gen Specs fig. 7.8.5-2.
_FIXED_LENGTH = {"00", "01", "02", "11", "13", "15", "17"}


def check_digit(digits: str) -> str:
    if not digits.isdigit():
        raise ValueError("check digit needs digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def gtin14(indicator: int, item_reference: str, company_prefix: str = COMPANY_PREFIX) -> str:
    body = f"{indicator}{company_prefix}{item_reference}"
    if len(body) != 13:
        raise ValueError("GTIN-14 needs 13 digits before the check digit")
    return body + check_digit(body)


def sscc(serial_reference: int, extension: int = 3, company_prefix: str = COMPANY_PREFIX) -> str:
    width = 16 - len(company_prefix)
    body = f"{extension}{company_prefix}{serial_reference:0{width}d}"
    return body + check_digit(body)


def pack_temperature(celsius: float) -> str:
    """AI 4331/4333 value: hundredths of a degree, six digits, trailing '-' if negative."""
    hundredths = round(abs(celsius) * 100)
    return f"{hundredths:06d}" + ("-" if celsius < 0 else "")


def element_string(pairs: list[tuple[str, str]]) -> str:
    """Concatenate AI/value pairs, with GS after each variable-length value that is
    not last. Callers put fixed-length AIs first, as printers do, to save GS."""
    out = []
    for i, (ai, value) in enumerate(pairs):
        out.append(ai + value)
        if ai not in _FIXED_LENGTH and i < len(pairs) - 1:
            out.append(GS)
    return "".join(out)


def digital_link(
    gtin: str,
    lot: str | None = None,
    serial: str | None = None,
    expiry: str | None = None,
    domain: str = "https://id.gs1.org",
) -> str:
    uri = f"{domain}/01/{gtin}"
    if lot:
        uri += f"/10/{lot}"
    if serial:
        uri += f"/21/{serial}"
    if expiry:
        uri += f"?17={expiry}"
    return uri
