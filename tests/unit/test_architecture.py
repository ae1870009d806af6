"""The import graph of shared/ has no cycle between its parts, and every part has a place in the
layers contract of pyproject.toml (which `lint-imports` checks in the test command). A cycle makes
two packages one in all but name: neither can change, be tested or be read without the other."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def part(module: str) -> str:
    """shared.accounts.status -> shared.accounts; shared.config -> shared.config."""
    return ".".join(module.split(".")[:2])


def part_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("shared", cache_dir=None)
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        if module == "shared":
            continue
        targets = edges.setdefault(part(module), set())
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("shared.") and part(imported) != part(module):
                targets.add(part(imported))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None; depth-first with colours."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_between_the_parts_of_shared():
    edges = part_graph()
    assert len(edges) > 15, "the graph is missing most of the package"
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle between parts of shared/: " + " -> ".join(cycle or [])


def test_every_part_of_shared_has_a_layer():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers" and c.get("containers") == ["shared"])
    named = {f"shared.{name.strip()}" for layer in layers["layers"] for name in layer.split("|")}
    missing = set(part_graph()) - named
    assert not missing, f"give {sorted(missing)} a place in the layers contract of pyproject.toml"
