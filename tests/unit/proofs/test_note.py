"""C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1."""

from __future__ import annotations

import base64

import pytest

from proofs.errors import FormatError, VerificationError
from proofs.keys import SigningKey
from proofs.merkle import leaf_hash
from proofs.note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    cosign_checkpoint,
    verify_cosignature,
)

# The example of c2sp.org/signed-note ("Verifier keys" and the note beside it).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZX"
    "sYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_spec_example_key_parses_and_round_trips() -> None:
    v = NoteVerifier.from_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo"
    assert v.key_id.hex() == "530d903a"
    assert v.public_key.raw.hex() == (
        "e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4"
    )
    assert v.to_vkey() == SPEC_VKEY


def test_spec_example_note_verifies() -> None:
    note = SignedNote.parse(SPEC_NOTE)
    assert note.text == "This is an example message.\n"
    assert note.verify([NoteVerifier.from_vkey(SPEC_VKEY)]) == ["example.com/foo"]
    assert note.to_text() == SPEC_NOTE


def test_spec_example_note_with_an_altered_text_fails() -> None:
    tampered = SPEC_NOTE.replace("example message", "example massage")
    with pytest.raises(VerificationError):
        SignedNote.parse(tampered).verify([NoteVerifier.from_vkey(SPEC_VKEY)])


def test_unknown_signature_lines_are_ignored() -> None:
    stranger = NoteSigner("stranger.example/x", SigningKey.generate())
    note = SignedNote.parse(SPEC_NOTE)
    note = note.with_signature(stranger.sign_text("another text\n"))  # garbage for this note
    assert note.verify([NoteVerifier.from_vkey(SPEC_VKEY)]) == ["example.com/foo"]


def test_a_note_signed_by_no_known_key_is_refused() -> None:
    other = NoteSigner("example.com/foo", SigningKey.generate())  # same name, other key
    with pytest.raises(VerificationError) as e:
        SignedNote.parse(SPEC_NOTE).verify([other.verifier])
    assert e.value.code == "no-known-signer"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "no blank line\n— a AAAA\n",
        "text\n\nnot a signature line\n",
        "text\n\n— name not-base64!\n",
        "text\n\n— name AAAA\n",  # too short
        "text\n\n— name AAAAAAAAAAA=",  # no final newline
        "text\x07\n\n— name AAAAAAAAAAA=\n",
        b"\xff\xfe\n\n",
    ],
)
def test_garbage_notes_raise_format_errors(garbage: str | bytes) -> None:
    with pytest.raises(FormatError):
        SignedNote.parse(garbage)


def test_bad_vkeys_are_refused() -> None:
    for bad in [
        "example.com/foo",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong id
        "exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AAAA",
    ]:
        with pytest.raises(FormatError):
            NoteVerifier.from_vkey(bad)


def test_checkpoint_round_trip_and_signing() -> None:
    key = SigningKey.generate()
    signer = NoteSigner("coldtrail.example/log", key)
    cp = Checkpoint("coldtrail.example/log", 42, leaf_hash(b"x"))
    note = SignedNote.sign(cp.to_text(), signer)
    parsed = SignedNote.parse(note.to_text())
    assert parsed.verify([signer.verifier]) == ["coldtrail.example/log"]
    assert Checkpoint.from_text(parsed.text) == cp
    lines = parsed.text.splitlines()
    assert lines == ["coldtrail.example/log", "42", base64.b64encode(leaf_hash(b"x")).decode()]


@pytest.mark.parametrize(
    "text",
    ["o\n01\nAAAA\n", "o\n-1\nAAAA\n", "o\n1\n", "o\n1\n!!\n", "o\n1\nAAAA\n", "o\n1\nAAAA"],
)
def test_bad_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(FormatError):
        Checkpoint.from_text(text)


def test_cosignature_v1_signs_the_spec_message_and_verifies() -> None:
    log = NoteSigner("example.com/behind-the-sofa", SigningKey.generate())
    witness_key = SigningKey.generate()
    witness = NoteSigner("witness.example.com/w1", witness_key, ALG_COSIGNATURE_V1)
    text = Checkpoint("example.com/behind-the-sofa", 20852163, leaf_hash(b"r")).to_text()
    sig = cosign_checkpoint(text, witness, 1679315147)
    assert sig.timestamp == 1679315147
    assert len(sig.signature) == 72
    # the signed message is exactly the one the spec writes out
    message = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    witness_key.public_key.verify(sig.signature[8:], message)
    note = SignedNote.sign(text, log).with_signature(sig)
    parsed = SignedNote.parse(note.to_text())
    assert parsed.verify([log.verifier, witness.verifier]) == [
        "example.com/behind-the-sofa",
        "witness.example.com/w1",
    ]
    assert verify_cosignature(text, parsed.signatures[1], witness.verifier) == 1679315147
    vkey = witness.verifier.to_vkey()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04


def test_cosignature_with_another_timestamp_fails() -> None:
    witness = NoteSigner("w.example/1", SigningKey.generate(), ALG_COSIGNATURE_V1)
    text = Checkpoint("log.example", 3, leaf_hash(b"r")).to_text()
    sig = cosign_checkpoint(text, witness, 1000)
    forged = NoteSignature(sig.name, sig.key_id, (1001).to_bytes(8, "big") + sig.signature[8:])
    with pytest.raises(VerificationError):
        verify_cosignature(text, forged, witness.verifier)
