"""Golden fixtures (tests/devstack/golden/*.json): the documented request and response examples of the Microsoft
Graph docs, each file naming its doc page (title and URL), sent to the simulator over HTTPS with a token and
compared by shape: every key the documented response shows is in the answer with the same JSON type, and values
are equal where they are deterministic (ids, etags, change keys and times are compared by type only, the host and
user of @odata.context are normalized). The doc pages: Create event
(https://learn.microsoft.com/en-us/graph/api/user-post-events), Get event
(https://learn.microsoft.com/en-us/graph/api/event-get), Combine multiple HTTP requests using JSON batching
(https://learn.microsoft.com/en-us/graph/json-batching) and the others named in each file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.devstack.test_events import a_token
from tests.devstack.world import World

GOLDEN = Path(__file__).parent / "golden"
PLACEHOLDER = re.compile(r"\{(\d+|world)\.([^}]+)\}")
CONTEXT = re.compile(r"^https://[^/]+/v1\.0/\$metadata#users\('[^']*'\)")
HOST = re.compile(r"^https://[^/]+/v1\.0/")


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def normalized(key: str, value: Any) -> Any:
    if key == "@odata.context" and isinstance(value, str):
        return HOST.sub("https://graph/v1.0/", CONTEXT.sub("https://graph/v1.0/$metadata#users('{user}')", value))
    return value


def differences(documented: Any, answered: Any, shape_only: set[str], path: str = "") -> list[str]:
    """Where ``answered`` departs from ``documented``: a missing key, another JSON type, or another value outside
    the shape-only paths (dotted, ``*`` for any list index)."""
    where = path or "(root)"
    if json_type(documented) != json_type(answered):
        return [f"{where}: documented {json_type(documented)} {documented!r}, answered {answered!r}"]
    if isinstance(documented, dict):
        found: list[str] = []
        for key, value in documented.items():
            inner = f"{path}.{key}" if path else key
            if key not in answered:
                found.append(f"{inner}: missing")
            else:
                found += differences(normalized(key, value), normalized(key, answered[key]), shape_only, inner)
        return found
    if isinstance(documented, list):
        if len(documented) != len(answered):
            return [f"{where}: documented {len(documented)} items, answered {len(answered)}"]
        return [d for a, b in zip(documented, answered, strict=True)
                for d in differences(a, b, shape_only, f"{path}.*" if path else "*")]
    if path in shape_only or documented == answered:
        return []
    return [f"{where}: documented {documented!r}, answered {answered!r}"]


def merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base.get(k), v) for k, v in over.items()}}
    return over


def lookup(answer: Any, key: str) -> Any:
    """``key`` of an answer: a top-level key (``@odata.nextLink``), else a dotted path (``value.1.id``)."""
    if key in answer:
        return answer[key]
    for part in key.split("."):
        answer = answer[int(part)] if isinstance(answer, list) else answer[part]
    return answer


def filled(value: Any, answers: dict[str, dict[str, Any]]) -> Any:
    """``{n.key}`` placeholders replaced by the value of ``key`` (or a dotted path into it) in step n's answer,
    ``{world.name}`` by the test tenant's ids (a whole-string placeholder keeps the value's type)."""
    if isinstance(value, dict):
        return {k: filled(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, answers) for v in value]
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return lookup(answers[whole[1]], whole[2])
        return PLACEHOLDER.sub(lambda m: str(lookup(answers[m[1]], m[2])), value)
    return value


def run_fixture(world: World, fixture: dict[str, Any]) -> list[str]:
    token = a_token(world, world.alice)
    answers: dict[str, dict[str, Any]] = {
        "world": {"alice": world.alice, "bob": world.bob, "projects": world.alice_projects}}
    for call in fixture.get("control", []):
        world.control(call["method"], call["path"], filled(call.get("body"), answers))
    found: list[str] = []
    with httpx.Client(verify=world.sim.certs.client_ssl_context(), timeout=30) as client:
        for n, step in enumerate(fixture["steps"]):
            for call in step.get("control", []):
                world.control(call["method"], filled(call["path"], answers), filled(call.get("body"), answers))
            request = filled(step["request"], answers)
            url = request["url"] if request["url"].startswith("https://") else world.sim.graph_url + request["url"]
            answer = client.request(request["method"], url,
                                    headers={"Authorization": f"Bearer {token}", **request.get("headers", {})},
                                    json=request.get("body"))
            body = answer.json() if answer.content else None
            documented = step["response"]
            if answer.status_code != documented["status"]:
                found.append(f"step {n}: documented status {documented['status']}, answered {answer.status_code}")
            if step.get("valuePrefix") and isinstance(body, dict):
                # the documented page is shortened for readability: its items are compared with the first ones
                body = {**body, "value": body["value"][:len(documented["body"]["value"])]}
            expected = merged(documented.get("body"), filled(step.get("expect", {}), answers))
            if expected is not None:
                found += [f"step {n}: {d}" for d in differences(expected, body, set(step.get("shapeOnly", [])))]
            for key in step.get("absent", []):  # documented as left out, e.g. the matching extended property
                found += [f"step {n}: {key} answered" for item in (body or {}).get("value", []) if key in item]
            answers[str(n)] = body if isinstance(body, dict) else {}
    return found


FIXTURES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_the_simulator_answers_the_documented_example(world: World, path: Path):
    fixture = json.loads(path.read_text())
    assert fixture["doc"]["url"].startswith("https://learn.microsoft.com/"), "each fixture names its doc page"
    assert run_fixture(world, fixture) == []


def test_the_comparison_can_fail():
    """A changed value, a missing key and another type are each reported; a shape-only path compares by type."""
    documented = {"a": 1, "b": {"c": "x"}, "d": [True], "e": "id1"}
    assert differences(documented, {"a": 1, "b": {"c": "x"}, "d": [True], "e": "id2", "f": 0}, {"e"}) == []
    assert differences(documented, {"a": 2, "b": {}, "d": [1], "e": None}, {"e"}) == [
        "a: documented 1, answered 2", "b.c: missing", "d.*: documented boolean True, answered 1",
        "e: documented string 'id1', answered None"]
