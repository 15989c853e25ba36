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
                            # The tests send ids as values: a count, which has no
                            # physical limit (a temperature of 5000 °C is refused).
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
