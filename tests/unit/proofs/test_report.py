"""Reading an auditor's report back (proofs.report): the embedded bundle and the marked
figures, whatever the markup around them."""

from __future__ import annotations

import pytest

from proofs.errors import FormatError
from proofs.report import extract, fmt_c

BUNDLE = '<script type="application/json" id="coldtrail-bundle">{"format":"x","a":"<\\/b"}</script>'


def test_claims_are_read_as_text_whatever_the_nesting() -> None:
    html = (
        '<!doctype html><html><body><p>MKT <span data-claim="mkt">6.<b>20</b> °C</span></p>'
        '<ol><li><span data-claim="excursion">a  b\n c</span></li>'
        '<li><span data-claim="excursion">d</span></li></ol>'
        '<td data-claim="gtin">&#48;9506</td><br>' + BUNDLE + "</body></html>"
    )
    stated = extract(html.encode())
    assert stated.claims == {"mkt": ["6.20 °C"], "excursion": ["a b c", "d"], "gtin": ["09506"]}
    assert stated.bundle == {"format": "x", "a": "</b"}


@pytest.mark.parametrize(
    "html",
    [
        "<html><body>no bundle</body></html>",
        "<html>" + BUNDLE + BUNDLE + "</html>",
        '<html><script type="application/json" id="coldtrail-bundle">{nope</script></html>',
    ],
)
def test_a_report_without_exactly_one_readable_bundle_is_refused(html: str) -> None:
    with pytest.raises(FormatError) as e:
        extract(html)
    assert e.value.code == "bad-report"


def test_temperatures_print_with_two_decimals() -> None:
    assert fmt_c(6.199999) == "6.20 °C" and fmt_c(None) == "–" and fmt_c(-18) == "-18.00 °C"
