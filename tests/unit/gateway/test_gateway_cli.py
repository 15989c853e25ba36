"""`coldtrail-gateway init` and `status`: key 0600, enrollment data, never the private key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from gateway.cli import main
from proofs.keystore import load_signing_key


def test_init_creates_a_0600_key_and_prints_only_public_data(tmp_path: Path, capsys) -> None:
    key_file = tmp_path / "state" / "gateway.key"
    assert main(["init", "--gateway-id", "truck-07", "--key-file", str(key_file), "--json"]) == 0
    out = capsys.readouterr()
    info = json.loads(out.out)
    key = load_signing_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert info == {
        "gateway_id": "truck-07",
        "public_key": key.public_key.to_base64(),
        "key_id": key.key_id,
        "algorithm": "ed25519",
    }
    pem = key_file.read_text()
    secret_b64 = "".join(pem.strip().splitlines()[1:-1])
    assert secret_b64 not in out.out + out.err
    # Running init again keeps the key and prints the same enrollment data.
    assert main(["init", "--gateway-id", "truck-07", "--key-file", str(key_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info


def test_init_without_enough_arguments_explains(capsys) -> None:
    assert main(["init"]) == 2
    assert "--gateway-id" in capsys.readouterr().err
