"""What a conversation runs with: the user's saved settings over the server's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from convo.config import Settings
from convo.domain.conversation import ProviderType, UserSecrets, UserSettings
from convo.llm.base import LLMConfig


@dataclass(frozen=True)
class ConversationConfig:
    llm: LLMConfig | None  # None: no model configured anywhere
    max_iterations: int
    max_budget_per_task: float | None
    confirmation_mode: bool
    env: dict[str, str]  # provider tokens and custom secrets for the shell

    def secret_values(self) -> list[str]:
        values = list(self.env.values())
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
    api_key: SecretStr | None = (
        SecretStr(user.llm_api_key) if user.llm_api_key else settings.llm_api_key
    )
    llm = (
        LLMConfig(
            model=model,
            base_url=user.llm_base_url or settings.llm_base_url,
            api_key=api_key,
            timeout_seconds=settings.llm_timeout_seconds,
            num_retries=settings.llm_num_retries,
        )
        if model
        else None
    )
    return ConversationConfig(
        llm=llm,
        max_iterations=user.max_iterations or settings.max_iterations,
        max_budget_per_task=(
            user.max_budget_per_task
            if user.max_budget_per_task is not None
            else settings.max_budget_per_task
        ),
        confirmation_mode=user.confirmation_mode,
        env=secrets.environment(providers_set or None),
    )
