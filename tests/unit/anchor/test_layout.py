"""The anchor's layout holds (issue 10, docs/adr/0313): no import cycle between its
modules, even through imports made at call time; no module outside ``anchor/storage``
names a database; the ledger and provenance logic import no HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

ANCHOR = Path(__file__).resolve().parents[3] / "anchor"


def _module(path: Path) -> str:
    rel = path.relative_to(ANCHOR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever in the file (call-time imports count)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ANCHOR.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in files and i != m} for m, p in files.items()}


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(n) :], n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(graph) > 30  # the walk saw the whole package


def test_only_storage_names_a_database() -> None:
    for path in ANCHOR.rglob("*.py"):
        module = _module(path)
        if module.startswith("anchor.storage"):
            continue
        named = {i for i in _imports(path) if i.split(".")[0] in {"sqlite3", "psycopg"}}
        # anchor.storage itself (open_store, provenance_source) is the facade to use
        named |= {
            i
            for i in _imports(path)
            if i.startswith(("anchor.storage.sqlite", "anchor.storage.postgres"))
        }
        assert not named, f"{module} names a database driver: {sorted(named)}"


def test_ledger_ingest_and_provenance_import_no_http() -> None:
    for package in ("ledger", "ingest", "provenance", "consortium", "storage"):
        for path in (ANCHOR / package).rglob("*.py"):
            web = {i for i in _imports(path) if i.startswith(("aiohttp", "anchor.http"))}
            assert not web, f"{_module(path)} imports {sorted(web)}"


def test_every_package_and_schema_is_shipped() -> None:
    """A package left out of pyproject installs from a checkout (editable) and breaks in
    a wheel: anchor.ordering and anchor.storage.postgres once were, with its schema."""
    import tomllib

    root = ANCHOR.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for top in ("proofs", "gateway", "anchor")
        for p in (root / top).rglob("__init__.py")
    }
    assert found <= listed, f"not in pyproject packages: {sorted(found - listed)}"
    data = project["tool"]["setuptools"]["package-data"]
    for sql in ANCHOR.rglob("*.sql"):
        package = ".".join(sql.parent.relative_to(root).parts)
        assert any(sql.match(pattern) for pattern in data.get(package, [])), sql
