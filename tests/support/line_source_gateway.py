"""The real gateway daemon with one extra, test-only source: a Unix-socket line source.

Run as a script: ``python line_source_gateway.py --config FILE --socket PATH``.
Each line a client writes is ``{"id": N, "src": "...", "val": ...}``; the
source hands a chunk of lines to the gateway's sink and, only after ``submit``
returned (the records are durable), answers ``ack N`` for each, just like an
MQTT source sends PUBACK after the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from gateway.config import load_config
from gateway.daemon import configure_logging, run_gateway
from gateway.observations import BadInput, Measurement, Observation, Sink


class LineSocketSource:
    def __init__(self, path: Path, name: str = "line-socket") -> None:
        self.name = name
        self.path = path

    async def run(self, sink: Sink) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tail = b""
            try:
                while chunk := await reader.read(65536):
                    lines = (tail + chunk).split(b"\n")
                    tail = lines.pop()
                    observations: list[Observation] = []
                    ids: list[int] = []
                    for line in lines:
                        try:
                            msg = json.loads(line)
                            # The drills send counters as values: a plain count (C62),
                            # since a temperature above 1000 CEL is not signed (plausibility).
                            observations.append(
                                Measurement(src=msg["src"], q="count", val=msg["val"], unit="C62")
                            )
                            ids.append(int(msg["id"]))
                        except (ValueError, KeyError, TypeError):
                            observations.append(BadInput(self.name, "not-json", "unreadable line"))
                    await sink.submit(observations)
                    writer.write(b"".join(b"ack %d\n" % i for i in ids))
                    await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        server = await asyncio.start_unix_server(serve, path=str(self.path))
        async with server:
            await server.serve_forever()


async def start_line_gateway(
    config_path: Path, sock: Path, log: Path, env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """This script as a subprocess (the real daemon plus the line source), stderr to ``log``."""
    with log.open("ab") as err:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--config",
            str(config_path),
            "--socket",
            str(sock),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
        )


async def connect_line_socket(
    sock: Path, proc: asyncio.subprocess.Process
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the line source once the gateway listens (fails if it exits first)."""
    for _ in range(400):
        if proc.returncode is not None:
            raise AssertionError(f"gateway exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError):
            return await asyncio.open_unix_connection(str(sock))
        await asyncio.sleep(0.025)
    raise AssertionError("gateway never opened its line socket")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    configure_logging("WARNING")
    config = load_config(args.config)
    asyncio.run(run_gateway(config, extra_sources=[LineSocketSource(Path(args.socket))]))


if __name__ == "__main__":
    main()
