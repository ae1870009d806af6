"""Function discovery through the azure-functions library's own index, as the Python worker does.

The runner keeps no list of functions of its own: it imports the app object, asks it for its
functions once (``FunctionApp.get_functions()`` raises when called twice on one app,
as measured on the CI machines) and reads each function's raw bindings, the same JSON the worker hands to the host.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: dict[str, Any]          # the trigger binding as the host receives it
    arg_name: str                    # the parameter that receives the trigger input
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


class UnsupportedFunction(ValueError):
    """The app declares something the runner cannot run faithfully."""


# One index per app object, so two runners in one process (tests) share it instead of indexing twice.
_INDEXES: dict[int, tuple[func.FunctionApp, list[FunctionSpec]]] = {}


def load_app(import_path: str, app_dir: Path | None = None) -> func.FunctionApp:
    """Import ``module:attribute`` (e.g. ``function_app:app``), with ``app_dir`` on sys.path."""
    module_name, _, attribute = import_path.partition(":")
    if app_dir is not None and str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app")
    if not isinstance(app, func.FunctionApp):
        raise TypeError(f"{import_path} is a {type(app).__name__}, not an azure.functions.FunctionApp")
    return app


def index_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    cached = _INDEXES.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    specs = [_spec(function) for function in app.get_functions()]
    _INDEXES[id(app)] = (app, specs)
    return specs


def _spec(function: Any) -> FunctionSpec:
    name = function.get_function_name()
    bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
    triggers = [b for b in bindings if b["type"].endswith("Trigger")]
    if len(triggers) != 1 or triggers[0]["type"] not in SUPPORTED_TRIGGERS:
        raise UnsupportedFunction(f"function {name}: the runner supports one of {SUPPORTED_TRIGGERS}, got "
                          f"{[b['type'] for b in triggers]}")
    others = [b for b in bindings if b is not triggers[0]
              and not (b["type"] == "http" and b["direction"] == "OUT" and b["name"] == "$return")]
    if others:
        # Input/output bindings are not used by this app (design: triggers call shared/ code);
        # refuse them rather than run a function without what it declared.
        kinds = [b["type"] for b in others]
        raise UnsupportedFunction(f"function {name}: bindings {kinds} are not supported by the runner")
    user_function = function.get_user_function()
    arg_name = triggers[0]["name"]
    params = list(inspect.signature(user_function).parameters)
    if params != [arg_name]:
        # The worker would also bind `context` and declared bindings; the runner passes only the trigger.
        raise UnsupportedFunction(f"function {name}: parameters {params}, the runner passes only {arg_name!r}")
    return FunctionSpec(name=name, trigger=triggers[0], arg_name=arg_name, user_function=user_function)
