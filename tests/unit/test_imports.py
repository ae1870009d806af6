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
