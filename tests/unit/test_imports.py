"""Every module of the product imports (mypy skips imports it cannot resolve, so a wrong import path in
an adapter would otherwise wait for its first use in Azure)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import shared

MODULES = sorted(m.name for m in pkgutil.walk_packages(shared.__path__, "shared."))


def test_the_package_has_modules():
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_function_app_never_imports_the_local_stack():
    # Imports inside functions count too: function_app.py imports lazily on purpose.
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[2] / "function_app.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported, "the parse found no imports at all"
    assert not {m for m in imported if m == "devstack" or m.startswith("devstack.")}
