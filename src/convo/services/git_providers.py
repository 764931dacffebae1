"""Read-only calls to a git provider's API with a stored token: the user, repositories and
branches, in OpenHands' shapes. GitHub and GitLab are supported (cloud or self-hosted via the
token's ``host``; a host with a scheme, e.g. ``http://127.0.0.1:8080``, is used as the API
base as it is). Provider failures become ``ProviderError``s; nothing here retries.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from convo.agent.microagents import parse_front_matter
from convo.domain.conversation import ProviderToken, ProviderType
from convo.errors import ConvoError

TIMEOUT_SECONDS = 10.0


class ProviderError(ConvoError):
    """The provider could not be asked."""


class ProviderUnsupported(ProviderError):
    pass


class ProviderUnreachable(ProviderError):
    pass


class ProviderRefused(ProviderError):
    """The provider refused the token (401/403)."""


class ProviderNotFound(ProviderError):
    """The provider has no such repository or file (404)."""


MICROAGENTS_DIR = ".openhands/microagents"


def microagents_dir(repository: str) -> str:
    """Where a repository keeps its microagents, as OpenHands looks for them: an org-wide
    ``.openhands`` (GitHub) or ``openhands-config`` (GitLab) repository at its root."""
    name = repository.rsplit("/", 1)[-1]
    return "microagents" if name in (".openhands", "openhands-config") else MICROAGENTS_DIR


@dataclass(frozen=True)
class ProviderClient:
    provider: ProviderType
    token: ProviderToken

    @property
    def base_url(self) -> str:
        host = (self.token.host or "").strip().rstrip("/")
        if host.startswith(("http://", "https://")):
            return host
        if self.provider is ProviderType.GITHUB:
            return f"https://{host}/api/v3" if host else "https://api.github.com"
        if self.provider is ProviderType.GITLAB:
            return f"https://{host or 'gitlab.com'}/api/v4"
        raise ProviderUnsupported(f"{self.provider.value} is not supported yet")

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        data, _link = await self._get_paged(path, params)
        return data

    async def _get_paged(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, str]:
        """The JSON answer and the provider's ``Link`` header (``""`` without one)."""
        import httpx  # at the first provider call, not at the server's start

        headers = {"Authorization": f"Bearer {self.token.token}", "Accept": "application/json"}
        name = self.provider.value
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT_SECONDS) as http:
                response = await http.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"Could not reach {name}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise ProviderRefused(f"{name} refused the token ({response.status_code})")
        if response.status_code == 404:
            raise ProviderNotFound(f"{name} has no {path}")
        if response.status_code >= 400:
            raise ProviderUnreachable(f"{name} answered {response.status_code}")
        try:
            return response.json(), response.headers.get("link", "")
        except ValueError:
            raise ProviderUnreachable(f"{name} answered with something that is not JSON") from None

    # --- calls -------------------------------------------------------------------------
    async def user(self) -> dict[str, Any]:
        data = await self._get("/user")
        if self.provider is ProviderType.GITLAB:
            return {
                "id": str(data.get("id")),
                "login": data.get("username"),
                "avatar_url": data.get("avatar_url"),
                "company": data.get("organization"),
                "name": data.get("name"),
                "email": data.get("email") or data.get("public_email"),
            }
        return {k: data.get(k) for k in ("login", "avatar_url", "company", "name", "email")} | {
            "id": str(data.get("id"))
        }

    async def repositories(
        self,
        page: int,
        per_page: int,
        query: str | None = None,
        installation_id: str | None = None,
    ) -> list[Any]:
        """One page of the user's repositories (or of a search, or of a GitHub App
        installation's). Each carries the provider's ``Link`` header as ``link_header``, as
        OpenHands sends it: the web client reads its ``rel="next"`` page to load more."""
        link = ""
        if self.provider is ProviderType.GITLAB:
            params: dict[str, Any] = {"membership": "true", "page": page, "per_page": per_page}
            params |= {"search": query} if query else {"order_by": "last_activity_at"}
            projects, link = await self._get_paged("/projects", params)
            return [self._gitlab_repo(r) | {"link_header": link} for r in projects]
        paging = {"page": page, "per_page": per_page}
        if query:
            found, link = await self._get_paged("/search/repositories", {"q": query} | paging)
            items = found.get("items", []) if isinstance(found, dict) else []
        elif installation_id:
            found, link = await self._get_paged(
                f"/user/installations/{quote(installation_id, safe='')}/repositories", paging
            )
            items = found.get("repositories", []) if isinstance(found, dict) else []
        else:
            items, link = await self._get_paged("/user/repos", {"sort": "pushed"} | paging)
        return [self._github_repo(r) | {"link_header": link} for r in items]

    async def repository(self, repository: str) -> dict[str, Any]:
        """One repository; ProviderNotFound when the token cannot see it."""
        if self.provider is ProviderType.GITLAB:
            return self._gitlab_repo(await self._get(f"/projects/{quote(repository, safe='')}"))
        return self._github_repo(await self._get(f"/repos/{repository}"))

    async def branches(self, repository: str) -> list[dict[str, Any]]:
        if self.provider is ProviderType.GITLAB:
            path = f"/projects/{quote(repository, safe='')}/repository/branches"
            return [
                {
                    "name": b.get("name"),
                    "commit_sha": (b.get("commit") or {}).get("id", ""),
                    "protected": bool(b.get("protected")),
                    "last_push_date": (b.get("commit") or {}).get("committed_date"),
                }
                for b in await self._get(path, {"per_page": 100})
            ]
        return [
            {
                "name": b.get("name"),
                "commit_sha": (b.get("commit") or {}).get("sha", ""),
                "protected": bool(b.get("protected")),
                "last_push_date": None,
            }
            for b in await self._get(f"/repos/{repository}/branches", {"per_page": 100})
        ]

    async def installations(self) -> list[str]:
        if self.provider is not ProviderType.GITHUB:
            return []
        data = await self._get("/user/installations")
        items = data.get("installations", []) if isinstance(data, dict) else []
        return [str(item.get("id")) for item in items]

    async def microagents(self, repository: str) -> list[dict[str, Any]]:
        """The repository's microagent files (``.md`` but README) and ``.cursorrules``, in
        OpenHands' shape; a repository without them has none."""
        folder = microagents_dir(repository)
        found: list[dict[str, Any]] = []
        try:
            if self.provider is ProviderType.GITLAB:
                items = await self._get(
                    f"/projects/{quote(repository, safe='')}/repository/tree",
                    {"path": folder, "per_page": 100},
                )
                files = [i for i in items if i.get("type") == "blob"]
            else:
                items = await self._get(f"/repos/{repository}/contents/{folder}")
                files = [i for i in items if i.get("type") == "file"]
        except ProviderNotFound:
            files = []
        for item in files:
            name = str(item.get("name", ""))
            if name.endswith(".md") and name.lower() != "readme.md":
                found.append(self._microagent(name.removesuffix(".md"), str(item.get("path"))))
        if await self._file_text(repository, ".cursorrules") is not None:
            found.append(self._microagent("cursorrules", ".cursorrules"))
        return found

    async def microagent_content(self, repository: str, path: str) -> dict[str, Any]:
        """One microagent file: its text and the triggers of its front matter."""
        text = await self._file_text(repository, path)
        if text is None:
            raise ProviderNotFound(f"{self.provider.value} has no {path} in {repository}")
        header, _body = parse_front_matter(text)
        triggers = header.get("triggers") or []
        return {
            "content": text,
            "path": path,
            "triggers": [str(t) for t in triggers] if isinstance(triggers, list) else [],
            "git_provider": self.provider.value,
        }

    async def _file_text(self, repository: str, path: str) -> str | None:
        """A file of the default branch as text; None if there is no such file."""
        try:
            if self.provider is ProviderType.GITLAB:
                data = await self._get(
                    f"/projects/{quote(repository, safe='')}/repository/files/"
                    f"{quote(path, safe='')}",
                    {"ref": "HEAD"},
                )
            else:
                data = await self._get(f"/repos/{repository}/contents/{quote(path)}")
        except ProviderNotFound:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            return None
        if data.get("encoding") == "base64":
            try:
                return base64.b64decode(data["content"]).decode("utf-8", errors="replace")
            except ValueError:
                raise ProviderUnreachable(
                    f"{self.provider.value} sent an unreadable file"
                ) from None
        return str(data["content"])

    def _microagent(self, name: str, path: str) -> dict[str, Any]:
        return {
            "name": name,
            "path": path,
            "created_at": datetime.now(UTC).isoformat(),  # as OpenHands: the time of asking
            "git_provider": self.provider.value,
        }

    # --- shapes ------------------------------------------------------------------------
    def _github_repo(self, repo: dict[str, Any]) -> dict[str, Any]:
        owner = repo.get("owner") or {}
        return {
            "id": str(repo.get("id")),
            "full_name": repo.get("full_name"),
            "git_provider": self.provider.value,
            "is_public": not repo.get("private", False),
            "stargazers_count": repo.get("stargazers_count"),
            "pushed_at": repo.get("pushed_at"),
            "owner_type": "organization" if owner.get("type") == "Organization" else "user",
            "main_branch": repo.get("default_branch"),
        }

    def _gitlab_repo(self, repo: dict[str, Any]) -> dict[str, Any]:
        namespace = repo.get("namespace") or {}
        return {
            "id": str(repo.get("id")),
            "full_name": repo.get("path_with_namespace"),
            "git_provider": self.provider.value,
            "is_public": repo.get("visibility") == "public",
            "stargazers_count": repo.get("star_count"),
            "pushed_at": repo.get("last_activity_at"),
            "owner_type": "organization" if namespace.get("kind") == "group" else "user",
            "main_branch": repo.get("default_branch"),
        }
