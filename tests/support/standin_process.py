"""A stand-in anchor member node as a process of its own, for tests that kill -9 it.

Its log key is a file, so a restart on the same port is the same member; the batches
it accepted are read back from its journal (tests/support/standin_anchor.py writes
each one before answering), so they are known even after a SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs.keys import PublicKey, SigningKey
from proofs.keystore import save_signing_key
from proofs.note import NoteSigner
from proofs.records import Manifest
from support import standin_anchor
from support.procs import free_port, stop_process, wait_for_port


@dataclass(frozen=True)
class JournalEntry:
    manifest: Manifest
    manifest_json: bytes
    records: list[dict[str, Any]]
    receipt: dict[str, Any]


class StandinProcess:
    """``url``, ``token``, ``vkey`` and ``enroll`` as the in-process stand-in has them
    (support.gateway_env.AnchorEndpoint); enrolments are passed on at ``start``."""

    def __init__(self, workdir: Path, *, origin: str, token: str = "gw-token") -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.origin = origin
        self.token = token
        self.port = free_port()
        key = SigningKey.generate()
        self._key_file = workdir / "log.key"
        save_signing_key(key, self._key_file)
        self.vkey = NoteSigner(origin, key).verifier.to_vkey()
        self.journal = workdir / "journal.jsonl"
        self._enroll_file = workdir / "enrolled.json"
        self._enrolled: dict[str, str] = {}
        self._log = workdir / "standin.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enroll(self, gw: str, public_key: PublicKey) -> None:
        self._enrolled[gw] = public_key.to_base64()

    def start(self) -> None:
        self._enroll_file.write_text(json.dumps(self._enrolled))
        with self._log.open("ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    standin_anchor.__file__,
                    "--port",
                    str(self.port),
                    "--origin",
                    self.origin,
                    "--log-key-file",
                    str(self._key_file),
                    "--token",
                    self.token,
                    "--enroll-file",
                    str(self._enroll_file),
                    "--journal",
                    str(self.journal),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for_port(self.port, proc=self.proc)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def accepted(self) -> list[JournalEntry]:
        """Every batch this member accepted, over all its runs, in order."""
        if not self.journal.exists():
            return []
        entries = []
        lines = self.journal.read_bytes().splitlines()
        for i, line in enumerate(lines):
            try:
                doc = json.loads(line)
            except ValueError:
                # Only the last line can be cut short by a kill, and it was never answered.
                assert i == len(lines) - 1, f"{self.journal}: line {i + 1} is not JSON"
                break
            manifest_json = doc["manifest"].encode()
            manifest = Manifest.from_dict(json.loads(manifest_json))
            entries.append(JournalEntry(manifest, manifest_json, doc["records"], doc["receipt"]))
        return entries
