"""The auditor's report on a real anchor: every section an auditor asks for, printable
(Chromium renders it with print styles and prints it to PDF), and verifiable offline:
``coldtrail-verify report.html`` checks the embedded bundle and every marked figure, and
refuses a report whose MKT, excursion or checkpoint was edited."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert(1)</script>Oat yoghurt"
CERT = b"%PDF-1.4\n% calibration of the truck logger\n" + b"%" * 2000


def _get(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _cli(tmp: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "anchor.cli", "--config",
                           str(tmp / "anchor.toml"), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proofs.verify_cli", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("report")
    tokens: dict[str, str] = {}
    with running_anchor(tmp, standard_journey(excursion=True), tokens_out=tokens) as base:
        _cli(tmp, "product", "set", "--gtin", GTIN, "--org", "fresh-farms", "--name", HOSTILE,
             "--pack", "case of 12")  # fmt: skip
        (tmp / "cert.pdf").write_bytes(CERT)
        _cli(tmp, "document", "add", str(tmp / "cert.pdf"), "--type", "calibration",
             "--subject", "gateway:truck-07-gw", "--org", "cool-logistics", "--issuer",
             "Lab Nord", "--valid-from", "2020-01-01", "--valid-until", "2099-01-01")  # fmt: skip
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nwarm\r\n'
                f"--{boundary}--\r\n").encode()  # fmt: skip
        req = urllib.request.Request(base + f"/v1/lots/{GTIN}/{LOT}/claims", data=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201
        status, raw = _get(base, f"/v1/lots/{GTIN}/{LOT}/report", tokens["cool-logistics:auditor"])
        assert status == 200, raw[:300]
        path = tmp / "report.html"
        path.write_bytes(raw)
        yield base, path, tokens


def test_the_report_says_what_an_auditor_asks(report) -> None:
    base, path, tokens = report
    text = path.read_text(encoding="utf-8")
    for heading in ("Verdict", "Alarm limits", "Mean kinetic temperature", "Custody timeline",
                    "Loggers", "Excursions", "Clock-sync evidence and signed gaps",
                    "Dispositions and overrides", "Claims", "Proof"):  # fmt: skip
        assert f">{heading}</h" in text, heading
    assert 'data-claim="verdict-status">fail<' in text
    assert "ΔH/R = 10,000 K" in text and "over any 24 h" in text
    # The truck logger's certificate is named; the other loggers have none on record.
    assert "cert.pdf by Lab Nord" in text and text.count("none on record") == 2
    assert "truck-07-gw/probe-truck-07-gw at truck-07: above from" in text
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;Oat yoghurt" in text and "<script>alert" not in text
    )
    assert re.search(r"<td>received</td><td>cool-logistics</td>", text)
    assert _get(base, f"/v1/lots/{GTIN}/{LOT}/report")[0] == 401
    assert _get(base, f"/v1/lots/{GTIN}/{LOT}/report", tokens["fresh-farms"])[0] == 403


def test_the_report_verifies_offline_and_an_edited_one_does_not(report, tmp_path: Path) -> None:
    _, path, _ = report
    ok = _verify(path)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"REPORT: the \d+ figures it prints are the ones its bundle proves",
                     ok.stdout)  # fmt: skip
    text = path.read_text(encoding="utf-8")
    mkt = re.search(r'data-claim="mkt">([^<]+)<', text)
    assert mkt is not None
    edits = {
        "mkt": text.replace(f'data-claim="mkt">{mkt.group(1)}<', 'data-claim="mkt">5.00 °C<'),
        "excursion": re.sub(
            r'<li><span data-claim="excursion">[^<]*</span></li>', "", text, count=1
        ),
        "checkpoint-size": re.sub(
            r'data-claim="checkpoint-size">\d+<', 'data-claim="checkpoint-size">999<', text
        ),
        "verdict-status": text.replace(
            'data-claim="verdict-status">fail<', 'data-claim="verdict-status">pass<'
        ),
    }
    for claim, edited in edits.items():
        assert edited != text, claim
        bad = tmp_path / f"edited-{claim}.html"
        bad.write_text(edited, encoding="utf-8")
        done = _verify(bad)
        assert done.returncode == 1 and "report-mismatch" in done.stderr, (claim, done.stderr)
        assert claim in done.stderr
    # The embedded bundle itself changed: its attestation no longer holds.
    start = text.index('id="coldtrail-bundle">') + len('id="coldtrail-bundle">')
    end = text.index("</script>", start)
    bundle = json.loads(text[start:end].replace("<\\/", "</"))
    bundle["subject"]["verdict"]["status"] = "pass"
    swapped = text[:start] + json.dumps(bundle).replace("</", "<\\/") + text[end:]
    (tmp_path / "swapped.html").write_text(swapped, encoding="utf-8")
    assert _verify(tmp_path / "swapped.html").returncode == 1


def test_the_report_prints(report, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from support.browser import launch_chromium

    _, path, _ = report
    with launch_chromium() as browser:
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(path.as_uri())
        page.emulate_media(media="print")
        expect(page.locator("h1")).to_contain_text("Cold-chain report")
        expect(page.locator("header.run")).to_be_visible()  # the running header, in print
        shot = tmp_path / "report-print.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
        pdf = page.pdf(format="A4")
        assert pdf[:5] == b"%PDF-" and pdf.count(b"/Type /Page") >= 3
        assert dialogs == []  # nothing in it ran
