"""The simulator's state lock (and the Key Vault dev server's) is a thread lock (tests read the state from their own
thread while the server runs in another). Held across an await it would give no mutual exclusion between the server's
coroutines, which all run on one thread and re-enter it freely: so no code under ``with ...lock:`` in devstack/m365
or devstack/keyvault.py awaits."""

from __future__ import annotations

import ast
from pathlib import Path

import devstack.keyvault
import devstack.m365

PACKAGE = Path(devstack.m365.__file__).parent
SOURCES = [*sorted(PACKAGE.glob("*.py")), Path(devstack.keyvault.__file__)]


def awaits_under_a_thread_lock(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.With) and any("lock" in ast.unparse(item.context_expr) for item in node.items):
            lines += [inner.lineno for inner in ast.walk(node) if isinstance(inner, ast.Await)]
    return lines


def test_the_checker_finds_an_await_under_the_lock():
    assert awaits_under_a_thread_lock("async def f(s):\n    with s.lock:\n        await g()\n") == [3]
    assert awaits_under_a_thread_lock("async def f(s):\n    async with s.send_lock:\n        await g()\n") == []


def test_no_state_lock_is_held_across_an_await():
    found = {path.name: lines for path in SOURCES
             if (lines := awaits_under_a_thread_lock(path.read_text()))}
    assert found == {}
