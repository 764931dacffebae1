"""Preparing a conversation's workspace before its status becomes RUNNING.

``prepare_workspace`` runs after the sandbox's shell is up and before the agent starts:

1. with a ``selected_repository``, the repository is cloned into ``<workspace>/<repo-name>``
   and its ``.openhands/setup.sh`` run (``convo.services.repository``); a conversation started
   again finds the clone and leaves it as it is (setup.sh ran on the first start);
2. the repository instructions found in the workspace (``AGENTS.md``, repo microagents) are
   collected (``convo.agent.microagents``).

It returns the instructions for the agent's system prompt: where the repository is, the
repository's instructions, then the conversation's own instructions (None when there are
none). A failure raises ``RepositoryError`` (a ``SandboxError``) with a message safe to show;
the conversation's task turns it into an error event and a ``STATUS$`` update.
"""

from __future__ import annotations

import asyncio

from convo.agent.microagents import format_instructions, repository_instructions
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import EventSink
from convo.runtime.base import Sandbox
from convo.services.repository import Checkout, RepositoryOptions, pick_remote
from convo.services.user_config import ConversationConfig


async def prepare_workspace(
    metadata: ConversationMetadata,
    sandbox: Sandbox,
    emit: EventSink,
    config: ConversationConfig | None = None,
) -> str | None:
    """Extra system-prompt instructions for this conversation, if any."""
    sections: list[str] = []
    if metadata.selected_repository:
        sections.append(await _check_out(metadata, sandbox, emit, config))
    found = await asyncio.to_thread(repository_instructions, sandbox.workspace)
    if found:
        sections.append(format_instructions(found))
    if metadata.conversation_instructions and metadata.conversation_instructions.strip():
        sections.append(metadata.conversation_instructions.strip())
    return "\n\n".join(sections) or None


async def _check_out(
    metadata: ConversationMetadata,
    sandbox: Sandbox,
    emit: EventSink,
    config: ConversationConfig | None,
) -> str:
    repository = metadata.selected_repository or ""
    remote = pick_remote(
        repository,
        metadata.git_provider,
        config.provider_tokens if config is not None else {},
        config.env if config is not None else {},
    )
    checkout = Checkout(
        sandbox, emit, remote, config.repository if config is not None else RepositoryOptions()
    )
    if await asyncio.to_thread(checkout.cloned):
        where = f"is checked out at {checkout.path} (from an earlier start)"
    else:
        branch = await checkout.clone(metadata.selected_branch)
        await checkout.run_setup_script()
        where = f"is checked out at {checkout.path} on branch {branch}"
    return (
        f"<repository>\nThe repository {repository} {where}. Work in that directory; its remote "
        "`origin` is set up, and git push/fetch authenticate without a token in the URL. Commit "
        "with the local git identity already configured; do not change global git config.\n"
        "</repository>"
    )
