"""Walk every scalar of a JSON document and change one at a time: the tamper tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path = tuple[Any, ...]


def scalars(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf value with its path of keys and indexes."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from scalars(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from scalars(v, (*path, i))
    else:
        yield path, node


def flipped(value: Any) -> Any:
    """A different value of the same kind (a middle character for strings, so that a
    base64 or hex string never changes only in bits its decoder ignores)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if value is None:
        return 0
    assert isinstance(value, str)
    if not value:
        return "x"
    i = len(value) // 2
    c = value[i]
    repl = {"0": "1", "9": "8", "a": "b", "A": "B", "z": "y", "Z": "Y", "x": "y"}.get(c)
    if repl is None:
        repl = chr(ord(c) + 1) if c.isalnum() else ("a" if c != "a" else "b")
    return value[:i] + repl + value[i + 1 :]


def set_at(doc: Any, path: Path, value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value
