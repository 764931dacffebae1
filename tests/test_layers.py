"""The dependency rule, enforced: layers import only what lies below them."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "convo"

# package -> convo packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "domain": {"api", "services", "agent", "storage", "runtime", "llm", "cluster", "cli"},
    "storage": {"api", "services", "agent", "runtime", "llm", "cluster", "cli"},
    "runtime": {"api", "services", "agent", "storage", "llm", "cluster", "cli"},
    "llm": {"api", "services", "agent", "storage", "runtime", "cluster", "cli"},
    "cluster": {"api", "services", "agent", "storage", "runtime", "llm", "cli"},
    "agent": {"api", "services", "storage", "cluster", "cli"},
    "services": {"api", "cli"},
}
THIRD_PARTY_HOMES = {
    "fastapi": {"api"},
    "starlette": {"api"},
    "sqlalchemy": {"storage"},
    "alembic": {"storage"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def test_layers_import_only_downwards() -> None:
    problems = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        package = _package(path)
        for name in _imports(path):
            top = name.split(".")
            if top[0] == "convo" and len(top) > 1 and top[1] in FORBIDDEN.get(package, set()):
                problems.append(f"{path.relative_to(SRC)} imports {name}")
            homes = THIRD_PARTY_HOMES.get(top[0])
            if homes is not None and package not in homes:
                problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert problems == []
