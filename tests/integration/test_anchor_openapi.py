"""schemathesis against the real service: /openapi.json matches what the API does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.batches import make_node
from support.procs import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_schemathesis_finds_no_drift_between_the_document_and_the_api(tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed in this venv (pip install schemathesis)")
    node = make_node(tmp_path)
    port = free_port()
    config = tmp_path / "anchor.toml"
    config.write_text(f'[anchor]\ndata_dir = "{node.config.data_dir}"\nlisten_port = {port}\n')
    with (tmp_path / "anchor.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anchor.cli", "--config", str(config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout_s=20, proc=proc)
        # One batch in the log so leaves, blocks and proofs have something to show.
        _, body = node.gateway.readings_batch(2)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/batches",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {node.gateway_token}",
            },
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,"
                "response_schema_conformance",
                "--phases",
                "examples,fuzzing",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
                # A real gateway token, so ingest gets past authentication to validation.
                "-H",
                f"Authorization: Bearer {node.gateway_token}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        print(result.stdout[-3000:])
    finally:
        stop_process(proc)
