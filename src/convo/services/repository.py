"""Checking out a conversation's repository into its workspace, before the agent starts.

Git runs in the sandbox's own shell, like every command of the conversation: a clone of an
untrusted repository is confined where the agent is (under bubblewrap too, where the
workspace is ``/workspace``), and paths are the ones the agent sees. The repository goes to
``<workspace>/<repo-name>``, as in OpenHands; the shell stays in the workspace.

Steps: ``git clone`` with the token in OpenHands' URL form (``https://{token}@host/o/r.git``
for GitHub, ``oauth2:{token}@`` for GitLab, ``x-token-auth:{token}@`` for Bitbucket; the
stored token's ``host`` replaces the default host, and may carry a scheme such as
``http://127.0.0.1:8080``), then the remote URL is reset to the token-less form, the branch
is checked out (or a work branch ``openhands-workspace-XXXXXXXX`` created), and a local git
identity is set (``git config --local``: the host's global config is never touched).

Later pushes and fetches authenticate through a credential helper in the repository's
``.git/config`` scoped to the provider's host, which prints the provider's token *variable*
(``$GITHUB_TOKEN``...) from the shell's environment. Chosen over ``http.extraHeader`` (the
token would be written into ``.git/config``) and over ``GIT_ASKPASS`` (a script file plus an
environment variable the agent's shell would need to keep): the token stays only in the
environment the sandbox already has, nothing on disk holds it, and a conversation restarted
with a new token uses the new one.

The token never reaches an event, a log line or an exception message: commands are shown
with the token-less URL, and output is masked before it leaves this module.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from convo.domain.conversation import PROVIDER_ENV_VARS, ProviderToken, ProviderType
from convo.domain.events import (
    SECRET_PLACEHOLDER,
    CmdOutputMetadata,
    CmdOutputObservation,
    CmdRunAction,
    Event,
    EventSink,
    EventSource,
    now_iso,
)
from convo.errors import SandboxError
from convo.runtime.base import CommandResult, Sandbox

DEFAULT_HOSTS = {
    ProviderType.GITHUB: "github.com",
    ProviderType.GITLAB: "gitlab.com",
    ProviderType.BITBUCKET: "bitbucket.org",
}
_TOKEN_USERS = {ProviderType.GITLAB: "oauth2", ProviderType.BITBUCKET: "x-token-auth"}
_SEGMENT = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"
_REPOSITORY = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})+$")
_BRANCH = re.compile(r"^[A-Za-z0-9_./+-]+$")
_AUTH_FAILURES = ("authentication failed", "could not read", "403", "401")


class RepositoryError(SandboxError):
    """The repository could not be checked out; the message is safe to show (no token)."""


@dataclass(frozen=True)
class RepositoryOptions:
    git_user_name: str = "convo-agent"
    git_user_email: str = "convo-agent@localhost"
    clone_timeout_seconds: float = 300.0
    setup_timeout_seconds: float = 600.0


@dataclass(frozen=True)
class RepositoryRemote:
    """Where a repository lives and how to authenticate to it."""

    repository: str  # "owner/repo" (GitLab: "group/subgroup/repo")
    provider: ProviderType
    token: str | None = None
    host: str | None = None  # "git.example.com", or with a scheme: "http://127.0.0.1:8080"

    def __post_init__(self) -> None:
        segments = self.repository.split("/")
        if not _REPOSITORY.match(self.repository) or {".", ".."} & set(segments):
            raise RepositoryError(f"Invalid repository name {self.repository!r}: use owner/repo")

    @property
    def name(self) -> str:
        """The directory the repository is cloned into."""
        last = self.repository.rsplit("/", 1)[-1]
        return last.removesuffix(".git") or last

    @property
    def base(self) -> str:
        """``scheme://host[:port][/prefix]`` of the provider, without credentials."""
        host = (self.host or DEFAULT_HOSTS.get(self.provider, "")).strip().rstrip("/")
        if not host:
            raise RepositoryError(
                f"No host is known for {self.provider.value}: set the token's host"
            )
        if "://" not in host:
            host = f"https://{host}"
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
            raise RepositoryError(f"Invalid git host {self.host!r}")
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def url(self, *, with_token: bool) -> str:
        repository = self.repository.removesuffix(".git")
        scheme, rest = self.base.split("://", 1)
        if not with_token or not self.token:
            return f"{scheme}://{rest}/{repository}.git"
        token = quote(self.token, safe="")
        user = _TOKEN_USERS.get(self.provider)
        credentials = f"{user}:{token}" if user else token
        return f"{scheme}://{credentials}@{rest}/{repository}.git"

    def mask(self, text: str) -> str:
        for value in {self.token or "", quote(self.token or "", safe="")}:
            if value:
                text = text.replace(value, SECRET_PLACEHOLDER)
        return text


def pick_remote(
    repository: str,
    provider: ProviderType | None,
    tokens: dict[ProviderType, ProviderToken],
    env: dict[str, str],
) -> RepositoryRemote:
    """The remote for a conversation: its provider (or the only one with a token, or GitHub)
    and the token the shell would see (a custom secret of the same name wins, as in the shell)
    or else the stored provider token."""
    if provider is None:
        provider = next(iter(tokens)) if len(tokens) == 1 else ProviderType.GITHUB
    stored = tokens.get(provider)
    token = env.get(PROVIDER_ENV_VARS[provider]) or (stored.token if stored else None)
    return RepositoryRemote(repository, provider, token or None, stored.host if stored else None)


def credential_helper(remote: RepositoryRemote) -> str:
    """A helper printing the provider's token variable from the shell's environment."""
    variable = PROVIDER_ENV_VARS[remote.provider]
    user = _TOKEN_USERS.get(remote.provider, "x-access-token")
    return (
        f'!f() {{ test "$1" = get || return 0; echo "username={user}"; '
        f'echo "password=${{{variable}}}"; }}; f'
    )


# --- events ----------------------------------------------------------------------------------
def setup_action(command: str, thought: str) -> CmdRunAction:
    return CmdRunAction(
        timestamp=now_iso(),
        source=EventSource.ENVIRONMENT,
        message=f"Running command: {command}",
        command=command,
        thought=thought,
        blocking=True,
    )


def setup_observation(action: Event, result: CommandResult, output: str) -> CmdOutputObservation:
    command = action.command if isinstance(action, CmdRunAction) else ""
    suffix = (
        "\n[The command timed out and was interrupted.]"
        if result.timed_out
        else f"\n[The command completed with exit code {result.exit_code}.]"
    )
    return CmdOutputObservation(
        timestamp=now_iso(),
        source=EventSource.ENVIRONMENT,
        message=f"Command `{command}` executed with exit code {result.exit_code}.",
        cause=action.id if action.id >= 0 else None,
        content=output,
        command=command,
        metadata=CmdOutputMetadata(
            exit_code=result.exit_code, working_dir=result.working_dir, suffix=suffix
        ),
        success=result.exit_code == 0 and not result.timed_out,
    )


# --- checking out ----------------------------------------------------------------------------
@dataclass
class Checkout:
    """Clones ``remote`` into the sandbox's workspace and prepares it."""

    sandbox: Sandbox
    emit: EventSink
    remote: RepositoryRemote
    options: RepositoryOptions

    @property
    def path(self) -> str:
        return f"{self.sandbox.workspace_path.rstrip('/')}/{self.remote.name}"

    def _git(self, *args: str) -> str:
        return " ".join(["git", "-C", shlex.quote(self.path), *(shlex.quote(a) for a in args)])

    async def _run(self, command: str, timeout: float) -> CommandResult:  # noqa: ASYNC109
        result = await self.sandbox.run(command, timeout=timeout)
        return CommandResult(
            self.remote.mask(result.output), result.exit_code, result.working_dir, result.timed_out
        )

    async def _shown(self, command: str, shown: str, thought: str, timeout: float) -> CommandResult:  # noqa: ASYNC109
        """Run ``command`` with its action and observation stored as events (``shown``)."""
        action = await self.emit(setup_action(shown, thought))
        result = await self._run(command, timeout)
        await self.emit(setup_observation(action, result, result.output))
        return result

    async def _quiet(self, *args: str) -> CommandResult:
        result = await self._run(self._git(*args), 60.0)
        if result.exit_code != 0:
            raise RepositoryError(
                f"git {args[0]} failed in {self.remote.repository}: {result.output.strip()[-500:]}"
            )
        return result

    def cloned(self) -> bool:
        return self.sandbox.workspace.lexists(f"{self.remote.name}/.git")

    async def clone(self, branch: str | None) -> str:
        """Clone, reset the remote, check out, set identity and credentials; the branch name."""
        if branch is not None and (not _BRANCH.match(branch) or branch.startswith("-")):
            raise RepositoryError(f"Invalid branch name {branch!r}")
        target = shlex.quote(self.path)
        prefix = "GIT_TERMINAL_PROMPT=0 git -c credential.helper= clone"
        result = await self._shown(
            f"{prefix} -- {shlex.quote(self.remote.url(with_token=True))} {target}",
            f"git clone {self.remote.url(with_token=False)} {self.path}",
            f"Cloning {self.remote.repository}",
            self.options.clone_timeout_seconds,
        )
        if result.exit_code != 0:
            raise RepositoryError(self._clone_failure(result))
        await self._quiet("remote", "set-url", "origin", self.remote.url(with_token=False))
        await self._quiet("config", "--local", "user.name", self.options.git_user_name)
        await self._quiet("config", "--local", "user.email", self.options.git_user_email)
        if self.remote.token:
            key = f"credential.{self.remote.base}.helper"
            await self._quiet("config", "--local", key, credential_helper(self.remote))
        work_branch = branch or f"openhands-workspace-{secrets.token_hex(4)}"
        checkout = ("checkout", branch) if branch else ("checkout", "-b", work_branch)
        checked = await self._run(self._git(*checkout), 60.0)
        if checked.exit_code != 0:
            raise RepositoryError(
                f"Could not check out branch {branch!r} of {self.remote.repository}: "
                f"{checked.output.strip()[-300:]}"
            )
        return work_branch

    def _clone_failure(self, result: CommandResult) -> str:
        where = f"{self.remote.repository} from {self.remote.base}"
        output = result.output.strip()
        if result.timed_out:
            return f"Cloning {where} timed out after {self.options.clone_timeout_seconds:g} s"
        lowered = output.lower()
        if any(marker in lowered for marker in _AUTH_FAILURES):
            token = "the token was refused" if self.remote.token else "no token is set"
            return (
                f"Could not clone {where}: authentication failed ({token}; check the "
                f"{self.remote.provider.value} token in the settings)"
            )
        if "not found" in lowered:
            return f"Could not clone {where}: the repository was not found"
        return f"Could not clone {where}: {output[-500:] or f'exit code {result.exit_code}'}"

    async def run_setup_script(self) -> CommandResult | None:
        """``.openhands/setup.sh`` of the repository, if it has one; its failure is not fatal."""
        script = f"{self.remote.name}/.openhands/setup.sh"
        if await asyncio.to_thread(self.sandbox.workspace.kind, script) != "file":
            return None
        command = f"(cd {shlex.quote(self.path)} && bash .openhands/setup.sh)"
        return await self._shown(
            command,
            command,
            "Running the repository's setup script",
            self.options.setup_timeout_seconds,
        )
