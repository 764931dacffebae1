"""Checkout against the token-protected git server, directly in a ProcessSandbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convo.domain.conversation import ProviderToken, ProviderType
from convo.domain.events import Event
from convo.runtime.base import SandboxSpec
from convo.runtime.bwrap import BwrapSandboxFactory
from convo.runtime.process import ProcessSandbox
from convo.runtime.select import bwrap_available
from convo.services.repository import (
    Checkout,
    RepositoryError,
    RepositoryOptions,
    RepositoryRemote,
    pick_remote,
)
from tests.repos.conftest import TOKEN
from tests.repos.gitserver import GitServer, git


class Recorder:
    """An ``emit`` for a checkout: stores each event with the next id, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> Event:
        stored = event.stored(len(self.events))
        self.events.append(stored)
        return stored


@pytest.mark.parametrize(
    ("provider", "host", "expected"),
    [
        (ProviderType.GITHUB, None, "https://{t}@github.com/o/r.git"),
        (ProviderType.GITLAB, None, "https://oauth2:{t}@gitlab.com/o/r.git"),
        (ProviderType.BITBUCKET, None, "https://x-token-auth:{t}@bitbucket.org/o/r.git"),
        (ProviderType.GITHUB, "git.example.com", "https://{t}@git.example.com/o/r.git"),
        (ProviderType.GITLAB, "http://127.0.0.1:8080/", "http://oauth2:{t}@127.0.0.1:8080/o/r.git"),
    ],
)
def test_clone_url_forms(provider: ProviderType, host: str | None, expected: str) -> None:
    remote = RepositoryRemote("o/r", provider, "tok", host)
    assert remote.url(with_token=True) == expected.format(t="tok")
    assert remote.url(with_token=False) == expected.replace("{t}@", "").replace(
        "oauth2:", ""
    ).replace("x-token-auth:", "")
    assert RepositoryRemote("o/r", provider, None, host).url(with_token=True) == remote.url(
        with_token=False
    )


@pytest.mark.parametrize("name", ["../etc", "owner", "owner/../x", "-x/y", "o/r;rm -rf /", "o/."])
def test_invalid_repository_names_are_refused(name: str) -> None:
    with pytest.raises(RepositoryError):
        RepositoryRemote(name, ProviderType.GITHUB)


def test_pick_remote_prefers_the_shell_variable_and_falls_back_to_the_only_provider() -> None:
    tokens = {ProviderType.GITLAB: ProviderToken(token="stored", host="gl.example.com")}
    remote = pick_remote("g/r", None, tokens, {})
    assert (remote.provider, remote.token, remote.host) == (
        ProviderType.GITLAB,
        "stored",
        "gl.example.com",
    )
    assert pick_remote("g/r", None, tokens, {"GITLAB_TOKEN": "custom"}).token == "custom"
    assert pick_remote("g/r", None, {}, {}).provider is ProviderType.GITHUB


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[ProcessSandbox]:
    box = ProcessSandbox(
        SandboxSpec("c1", tmp_path / "workspace", env={"GITLAB_TOKEN": TOKEN}),
        kill_grace_seconds=0.2,
    )
    await box.start()
    yield box
    await box.close()


async def test_gitlab_form_clones_onto_a_work_branch_and_pushes_without_a_stored_token(
    sandbox: ProcessSandbox, git_server: GitServer, tmp_path: Path
) -> None:
    emit = Recorder()

    remote = RepositoryRemote("owner/repo", ProviderType.GITLAB, TOKEN, git_server.base_url)
    checkout = Checkout(sandbox, emit, remote, RepositoryOptions(git_user_name="bot"))
    branch = await checkout.clone(None)
    assert re.fullmatch(r"openhands-workspace-[0-9a-f]{8}", branch)
    assert any(a.startswith("oauth2:") for a in git_server.authorizations)
    repo = Path(sandbox.workspace_path) / "repo"
    config = (repo / ".git" / "config").read_text()
    assert TOKEN not in config and git_server.base_url + "/owner/repo.git" in config
    assert "name = bot" in config
    assert TOKEN not in str([e.to_wire() for e in emit.events])
    # later pushes authenticate through the credential helper and $GITLAB_TOKEN
    pushed = await sandbox.run(f"cd {repo} && git push -q origin HEAD:refs/heads/pushed 2>&1")
    assert pushed.exit_code == 0, pushed.output
    refs = git(
        tmp_path, "ls-remote", str(git_server.project_root / "owner/repo.git"), home=tmp_path
    )
    assert "refs/heads/pushed" in refs
    assert checkout.cloned()


async def test_an_unknown_branch_is_a_clear_error(
    sandbox: ProcessSandbox, git_server: GitServer
) -> None:
    async def emit(event: Event) -> Event:
        return event

    remote = RepositoryRemote("owner/repo", ProviderType.GITLAB, TOKEN, git_server.base_url)
    with pytest.raises(RepositoryError, match="Could not check out branch 'nope'"):
        await Checkout(sandbox, emit, remote, RepositoryOptions()).clone("nope")


async def test_setup_script_output_is_shown_and_a_hung_script_times_out(
    sandbox: ProcessSandbox, git_server: GitServer
) -> None:
    emit = Recorder()

    remote = RepositoryRemote("owner/repo", ProviderType.GITLAB, TOKEN, git_server.base_url)
    checkout = Checkout(sandbox, emit, remote, RepositoryOptions(setup_timeout_seconds=1))
    await checkout.clone("main")
    script = Path(sandbox.workspace_path) / "repo" / ".openhands" / "setup.sh"
    script.write_text("echo before-the-hang\nsleep 30\n")
    result = await checkout.run_setup_script()
    assert result is not None and result.timed_out
    observation = emit.events[-1]
    assert observation.observation == "run" and observation.cause == emit.events[-2].id
    assert "before-the-hang" in str(observation.content)
    assert "timed out" in str((observation.extras or {})["metadata"]["suffix"])
    assert (await sandbox.run("echo still-usable")).output.strip() == "still-usable"


async def test_the_checkout_works_inside_the_bubblewrap_sandbox(
    git_server: GitServer, tmp_path: Path
) -> None:
    """Git runs in the sandbox's shell: the clone lands in /workspace/repo there, setup.sh
    runs confined, and a push authenticates through the credential helper."""
    assert bwrap_available(), "bubblewrap cannot run here: `make system-deps` installs it"
    env = {"GITHUB_TOKEN": TOKEN}
    # the test's git server listens on the host's loopback, which an isolated sandbox
    # cannot reach (tests/security checks that): this sandbox shares the host's network
    box = BwrapSandboxFactory(network="host").create(SandboxSpec("c2", tmp_path / "ws", env=env))
    await box.start()
    try:
        emit = Recorder()

        remote = RepositoryRemote("owner/repo", ProviderType.GITHUB, TOKEN, git_server.base_url)
        checkout = Checkout(box, emit, remote, RepositoryOptions())
        assert await checkout.clone("feature") == "feature"
        await checkout.run_setup_script()
        assert checkout.path == "/workspace/repo"
        assert (tmp_path / "ws" / "repo" / "setup-ran.marker").exists()
        pushed = await box.run(
            "cd /workspace/repo && git commit -qm w --allow-empty && "
            "git push -q origin HEAD:refs/heads/from-bwrap 2>&1"
        )
        assert pushed.exit_code == 0, pushed.output
        assert TOKEN not in (tmp_path / "ws" / "repo" / ".git" / "config").read_text()
        assert TOKEN not in str([e.to_wire() for e in emit.events])
    finally:
        await box.close()
