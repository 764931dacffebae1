"""The server side of python-socketio, imported without its client side.

``import socketio`` runs the package's ``__init__``, which imports every client and message
queue manager it has: engineio's clients (aiohttp, requests, websocket-client), redis, kombu,
... About a third of convo's start-up went there, for code a server never runs.

``server_side`` imports only the server modules (``socketio.async_server``,
``socketio.asgi`` and the engineio modules they use). The two packages are registered first
as modules whose ``__init__`` has not run; the first time anything asks either of them for a
name the server modules did not provide (``socketio.AsyncClient`` in a test, say), its real
``__init__`` runs then, so the packages stay complete for every other user.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.RLock()


def _deferred_package(name: str) -> ModuleType:
    """``name`` registered with its search path but its ``__init__`` not yet run."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    locations = [Path(p) for p in spec.submodule_search_locations]

    def complete(attribute: str) -> Any:
        """Run the real ``__init__`` once, then answer as the complete package does."""
        if _is_submodule(locations, attribute):
            # ``from . import packet`` asks first: a submodule not imported yet is imported
            # by the import system, without the package's ``__init__``
            _missing(name, attribute)
        with _lock:
            if module.__dict__.get("__getattr__") is complete:
                del module.__dict__["__getattr__"]
                loader.exec_module(module)
        return (
            module.__dict__[attribute]
            if attribute in module.__dict__
            else _missing(name, attribute)
        )

    module.__dict__["__getattr__"] = complete
    sys.modules[name] = module
    return module


def _is_submodule(locations: list[Path], attribute: str) -> bool:
    return any(
        (where / f"{attribute}.py").is_file() or (where / attribute / "__init__.py").is_file()
        for where in locations
    )


def _missing(name: str, attribute: str) -> Any:
    raise AttributeError(f"module {name!r} has no attribute {attribute!r}")


@dataclass(frozen=True)
class ServerSide:
    async_server: type[Any]  # socketio.AsyncServer
    asgi_app: type[Any]  # socketio.ASGIApp
    connection_refused: type[Exception]  # socketio.exceptions.ConnectionRefusedError


def server_side() -> ServerSide:
    """The server classes of python-socketio, importing only the server side."""
    with _lock:
        if "socketio" not in sys.modules and "engineio" not in sys.modules:
            engineio = _deferred_package("engineio")
            _deferred_package("socketio")
            # what socketio's server modules read from the engineio package itself
            for attribute, module in (
                ("Server", "engineio.server"),
                ("AsyncServer", "engineio.async_server"),
                ("ASGIApp", "engineio.async_drivers.asgi"),
            ):
                setattr(engineio, attribute, getattr(importlib.import_module(module), attribute))
    return ServerSide(
        async_server=importlib.import_module("socketio.async_server").AsyncServer,
        asgi_app=importlib.import_module("socketio.asgi").ASGIApp,
        connection_refused=importlib.import_module("socketio.exceptions").ConnectionRefusedError,
    )
