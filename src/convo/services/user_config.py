"""What a conversation runs with: the user's saved settings over the server's defaults."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from pydantic import SecretStr

from convo.agent.condenser import CondenserConfig
from convo.config import Settings
from convo.domain.conversation import ProviderToken, ProviderType, UserSecrets, UserSettings
from convo.domain.mcp_config import MCPConfig
from convo.llm.base import LLMConfig
from convo.llm.model_info import context_window
from convo.services.repository import RepositoryOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversationConfig:
    llm: LLMConfig | None  # None: no model configured anywhere
    max_iterations: int
    max_budget_per_task: float | None
    confirmation_mode: bool
    env: dict[str, str]  # provider tokens and custom secrets for the shell
    # the custom secrets in ``env``: variable name -> the user's description
    secret_descriptions: dict[str, str] = field(default_factory=dict)
    provider_tokens: dict[ProviderType, ProviderToken] = field(default_factory=dict)
    repository: RepositoryOptions = field(default_factory=RepositoryOptions)
    condenser: CondenserConfig = field(default_factory=CondenserConfig)
    # stored custom secrets left out of ``env`` (a refused name or value): name -> reason
    withheld_secrets: dict[str, str] = field(default_factory=dict)
    withheld_values: tuple[str, ...] = ()  # still masked in events
    mcp: MCPConfig | None = None  # the user's MCP servers (None: none, or invalid)
    mcp_error: str | None = None  # why the stored mcp_config was not used

    def secret_values(self) -> list[str]:
        values = list(self.env.values()) + list(self.withheld_values)
        if self.mcp is not None:
            values += self.mcp.secret_values()
        if self.llm is not None and self.llm.api_key is not None:
            values.append(self.llm.api_key.get_secret_value())
        return [v for v in values if v]


def resolve_config(
    settings: Settings,
    user: UserSettings | None,
    secrets: UserSecrets,
    providers_set: list[ProviderType] | None,
) -> ConversationConfig:
    user = user or UserSettings()
    model = user.llm_model or settings.llm_model
    withheld = secrets.refused()
    mcp, mcp_error = _mcp_config(user)
    return ConversationConfig(
        mcp=mcp,
        mcp_error=mcp_error,
        withheld_secrets=withheld,
        withheld_values=tuple(secrets.custom_secrets[name].secret for name in withheld),
        llm=resolve_llm(settings, user),
        max_iterations=user.max_iterations or settings.max_iterations,
        max_budget_per_task=(
            user.max_budget_per_task
            if user.max_budget_per_task is not None
            else settings.max_budget_per_task
        ),
        confirmation_mode=user.confirmation_mode,
        env=secrets.environment(providers_set or None),
        secret_descriptions=secrets.descriptions(),
        provider_tokens={
            provider: token
            for provider, token in secrets.provider_tokens.items()
            if not providers_set or provider in providers_set
        },
        repository=RepositoryOptions(
            git_user_name=user.git_user_name or settings.git_user_name,
            git_user_email=user.git_user_email or settings.git_user_email,
            clone_timeout_seconds=settings.clone_timeout_seconds,
            setup_timeout_seconds=settings.setup_script_timeout_seconds,
        ),
        condenser=CondenserConfig(
            max_events=settings.condense_after_events,
            max_input_tokens=settings.llm_max_input_tokens,
            context_window=functools.partial(model_context_window, model) if model else None,
        ),
    )


def _mcp_config(user: UserSettings) -> tuple[MCPConfig | None, str | None]:
    """The user's MCP servers; one stored before it was validated may be refused now."""
    stored = user.extra.get("mcp_config")
    if not stored:
        return None, None
    try:
        config = MCPConfig.parse(stored)
    except ValueError as exc:
        return None, str(exc)
    return (None if config.empty else config), None


def resolve_llm(settings: Settings, user: UserSettings | None) -> LLMConfig | None:
    """The LLM a conversation calls: the user's saved model, key and base URL over the
    server's; None when no model is set anywhere. Resolved again before every LLM call of a
    running conversation (``services.live_llm``), so that a settings change reaches it."""
    user = user or UserSettings()
    model = user.llm_model or settings.llm_model
    if not model:
        return None
    api_key: SecretStr | None = (
        SecretStr(user.llm_api_key) if user.llm_api_key else settings.llm_api_key
    )
    return LLMConfig(
        model=model,
        base_url=user.llm_base_url or settings.llm_base_url,
        api_key=api_key,
        timeout_seconds=settings.llm_timeout_seconds,
        num_retries=settings.llm_num_retries,
    )


def model_context_window(model: str) -> int | None:
    """The model's input window from litellm's price map, read as data (no import, no network).

    Reads a file the first time per model: the condenser calls it in a thread, and only once
    a request is large enough for the window to matter.
    """
    window = context_window(model)
    if window is None:
        logger.info("the price map does not know the context window of %s", model)
    return window
