"""The offline verifier installs and runs without the daemons (issue 10, ADR 0315)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DAEMON_LIBS = {"aiohttp", "paho", "serial", "tinydb", "biip", "prometheus_client", "psycopg"}


def test_the_base_install_is_the_verifier_and_its_three_libraries() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in
             project["dependencies"]}  # fmt: skip
    assert names == {"cryptography", "pynacl", "rfc8785"}
    extras = project["optional-dependencies"]
    assert {"gateway", "anchor"} <= set(extras)
    assert any(d.startswith("aiohttp") for d in extras["anchor"])


def test_coldtrail_verify_imports_only_proofs() -> None:
    code = (
        "import sys, proofs.verify_cli\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.split()
    )
    assert "proofs" in loaded
    assert not loaded & (DAEMON_LIBS | {"anchor", "gateway", "firmware_sim"})
