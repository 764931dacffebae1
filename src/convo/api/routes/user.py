"""/api/user/*: the git provider account behind the stored token, its repositories and
branches.

Without a stored provider token the lists are empty and ``/info`` is a 401 saying a token is
needed. With one, the provider is asked; if it cannot be reached the answer is a 502 naming
the provider, if it refuses the token a 401. Repository lists carry the provider's ``Link``
header in each entry's ``link_header`` (the web client pages with it). Suggested tasks are
not computed (always []).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from convo.api.deps import StorageDep, UserIdDep
from convo.domain.conversation import ProviderType
from convo.services.git_providers import (
    ProviderClient,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    ProviderUnsupported,
)
from convo.storage.base import Storage

router = APIRouter(prefix="/api/user", tags=["user"])

TOKEN_REQUIRED = "Git provider token required. (such as GitHub)"
T = TypeVar("T")


async def _client(
    storage: Storage, user_id: str | None, provider: ProviderType | None
) -> ProviderClient | None:
    secrets = await storage.settings.load_secrets(user_id)
    tokens = {p: t for p, t in secrets.provider_tokens.items() if t.token}
    if provider is not None:
        token = tokens.get(provider)
        return ProviderClient(provider, token) if token is not None else None
    for candidate in ProviderType:
        if candidate in tokens:
            return ProviderClient(candidate, tokens[candidate])
    return None


async def _ask(call: Callable[[], Awaitable[T]]) -> T | JSONResponse:
    try:
        return await call()
    except ProviderRefused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401)
    except ProviderUnsupported as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    except ProviderNotFound as exc:
        return JSONResponse({"detail": str(exc)}, status_code=404)
    except ProviderError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=502)


ProviderQuery = Annotated[ProviderType | None, Query()]


@router.get("/info", response_model=None)
async def get_user(storage: StorageDep, user_id: UserIdDep) -> Any:
    client = await _client(storage, user_id, None)
    if client is None:
        return JSONResponse({"detail": TOKEN_REQUIRED}, status_code=401)
    return await _ask(client.user)


@router.get("/repositories", response_model=None)
async def get_repositories(
    storage: StorageDep,
    user_id: UserIdDep,
    selected_provider: ProviderQuery = None,
    sort: str = "pushed",  # noqa: ARG001 - accepted as OpenHands does
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 30,
    installation_id: str | None = None,
) -> Any:
    client = await _client(storage, user_id, selected_provider)
    if client is None:
        return []
    return await _ask(lambda: client.repositories(page, per_page, None, installation_id))


@router.get("/search/repositories", response_model=None)
async def search_repositories(
    storage: StorageDep,
    user_id: UserIdDep,
    query: Annotated[str, Query(min_length=1)],
    per_page: Annotated[int, Query(ge=1, le=100)] = 5,
    sort: str = "stars",  # noqa: ARG001 - accepted as OpenHands does
    order: str = "desc",  # noqa: ARG001 - accepted as OpenHands does
    selected_provider: ProviderQuery = None,
) -> Any:
    client = await _client(storage, user_id, selected_provider)
    if client is None:
        return []
    return await _ask(lambda: client.repositories(1, per_page, query))


@router.get("/repository/branches", response_model=None)
async def get_branches(
    storage: StorageDep,
    user_id: UserIdDep,
    repository: Annotated[str, Query(min_length=1, pattern=r"^[\w.-]+(/[\w.-]+)+$")],
    selected_provider: ProviderQuery = None,
) -> Any:
    if any(part in {".", ".."} for part in repository.split("/")):
        return JSONResponse({"detail": f"Invalid repository name {repository!r}"}, 400)
    client = await _client(storage, user_id, selected_provider)
    if client is None:
        return []
    return await _ask(lambda: client.branches(repository))


_REPOSITORY = re.compile(r"[\w.-]+(/[\w.-]+)+")


def _bad_name(name: str) -> bool:
    return any(part in {"", ".", ".."} for part in name.split("/"))


def _bad_repository(name: str) -> bool:
    return _REPOSITORY.fullmatch(name) is None or _bad_name(name)


@router.get("/repository/{repository:path}/microagents/content", response_model=None)
async def get_repository_microagent_content(
    storage: StorageDep,
    user_id: UserIdDep,
    repository: str,
    file_path: Annotated[str, Query(min_length=1, max_length=500)],
) -> Any:
    """One microagent file of a repository, read through the provider's API."""
    if _bad_repository(repository) or _bad_name(file_path) or "\\" in file_path:
        return JSONResponse({"detail": "Invalid repository or file path"}, 400)
    client = await _client(storage, user_id, None)
    if client is None:
        return JSONResponse({"detail": TOKEN_REQUIRED}, status_code=401)
    return await _ask(lambda: client.microagent_content(repository, file_path))


@router.get("/repository/{repository:path}/microagents", response_model=None)
async def get_repository_microagents(
    storage: StorageDep,
    user_id: UserIdDep,
    repository: str,
) -> Any:
    """The microagents a repository keeps (``.openhands/microagents/*.md``, ``.cursorrules``),
    read through the provider's API; none without a provider token."""
    if _bad_repository(repository):
        return JSONResponse({"detail": f"Invalid repository name {repository!r}"}, 400)
    client = await _client(storage, user_id, None)
    if client is None:
        return []
    return await _ask(lambda: client.microagents(repository))


@router.get("/installations", response_model=None)
async def get_installations(
    storage: StorageDep, user_id: UserIdDep, provider: ProviderQuery = None
) -> Any:
    client = await _client(storage, user_id, provider)
    if client is None:
        return []
    return await _ask(client.installations)


@router.get("/suggested-tasks")
async def get_suggested_tasks() -> list[dict[str, Any]]:
    return []
