"""Key files: the RFC 8410 layout is read without OpenSSL; anything else through it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proofs.errors import KeyError_
from proofs.keys import SigningKey


def test_what_to_pem_writes_is_read_back_to_the_same_key() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.count(b"\n") == 3  # the three-line layout the fast path reads
    again = SigningKey.from_pem(pem)
    assert again.seed() == key.seed() and again.public_key == key.public_key
    assert again.sign(b"m") == key.sign(b"m")


def test_reading_a_key_file_does_not_load_openssl() -> None:
    # The gateway's memory budget: cryptography costs 7 MB resident (docs/adr/0007).
    pem = SigningKey.from_seed(b"\x05" * 32).to_pem()
    code = (
        "import sys; from proofs.keys import SigningKey; "
        f"k = SigningKey.from_pem({pem!r}); "
        "print(k.key_id, 'cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == [SigningKey.from_seed(b"\x05" * 32).key_id, "False"]


def test_other_layouts_go_through_the_general_parser() -> None:
    key = SigningKey.from_seed(b"\x06" * 32)
    crlf = key.to_pem().replace(b"\n", b"\r\n")  # not the fast layout, still a valid PEM
    assert SigningKey.from_pem(crlf).public_key == key.public_key


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        # a valid PEM of 48 bytes that are not the Ed25519 PKCS#8 prefix
        b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 64 + b"\n-----END PRIVATE KEY-----\n",
    ],
)
def test_unreadable_key_files_get_a_stable_code(pem: bytes) -> None:
    with pytest.raises(KeyError_) as e:
        SigningKey.from_pem(pem)
    assert e.value.code == "bad-private-key"
