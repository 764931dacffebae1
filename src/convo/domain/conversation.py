"""Conversation records, statuses and per-user settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from convo.domain.secret_rules import refused_name_reason, refused_value_reason


def utcnow() -> datetime:
    return datetime.now(UTC)


class ConversationStatus(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class AgentState(StrEnum):
    LOADING = "loading"
    RUNNING = "running"
    AWAITING_USER_INPUT = "awaiting_user_input"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    REJECTED = "rejected"
    ERROR = "error"
    AWAITING_USER_CONFIRMATION = "awaiting_user_confirmation"
    USER_CONFIRMED = "user_confirmed"
    USER_REJECTED = "user_rejected"
    RATE_LIMITED = "rate_limited"


class ProviderType(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    BITBUCKET = "bitbucket"
    ENTERPRISE_SSO = "enterprise_sso"


PROVIDER_ENV_VARS: dict[ProviderType, str] = {
    ProviderType.GITHUB: "GITHUB_TOKEN",
    ProviderType.GITLAB: "GITLAB_TOKEN",
    ProviderType.BITBUCKET: "BITBUCKET_TOKEN",
    ProviderType.ENTERPRISE_SSO: "ENTERPRISE_SSO_TOKEN",
}


class ConversationTrigger(StrEnum):
    RESOLVER = "resolver"
    GUI = "gui"
    SUGGESTED_TASK = "suggested_task"
    OPENHANDS_API = "openhands_api"
    SLACK = "slack"
    MICROAGENT_MANAGEMENT = "microagent_management"
    JIRA = "jira"
    JIRA_DC = "jira_dc"
    LINEAR = "linear"


def default_title(conversation_id: str) -> str:
    return f"Conversation {conversation_id[:5]}"


@dataclass
class ConversationMetadata:
    """What is stored about a conversation besides its events."""

    conversation_id: str
    user_id: str | None = None
    title: str = ""
    selected_repository: str | None = None
    selected_branch: str | None = None
    git_provider: ProviderType | None = None
    trigger: ConversationTrigger | None = ConversationTrigger.GUI
    created_at: datetime = field(default_factory=utcnow)
    last_updated_at: datetime = field(default_factory=utcnow)
    llm_model: str | None = None
    accumulated_cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    pr_number: list[int] = field(default_factory=list)
    conversation_instructions: str | None = None
    # Whether the user wants the loop running: used to resume after a restart.
    desired_running: bool = False
    # The providers whose tokens the loop was last started with (None: all stored ones),
    # so that a resumed loop gets the same ones.
    providers_set: list[ProviderType] | None = None
    # The agent state of the last stored ``agent_state_changed`` event (None: none yet);
    # the event store keeps it up to date as it appends such an event.
    agent_state: AgentState | None = None
    # The Idempotency-Key of the create that made it: unique per user while it is kept.
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if not self.title:
            self.title = default_title(self.conversation_id)


@dataclass
class UserSettings:
    """A user's saved settings; None fields fall back to the server's defaults."""

    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    agent: str | None = None
    max_iterations: int | None = None
    max_budget_per_task: float | None = None
    confirmation_mode: bool = False
    language: str | None = None
    search_api_key: str | None = None  # a secret: stored sealed, never returned
    git_user_name: str | None = None  # identity in cloned repositories, over the server's
    git_user_email: str | None = None
    # every other field the OpenHands client saves (toggles, mcp_config, ...), kept as sent
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class ProviderToken:
    token: str
    host: str | None = None
    user_id: str | None = None


@dataclass
class CustomSecret:
    secret: str
    description: str = ""


@dataclass
class UserSecrets:
    provider_tokens: dict[ProviderType, ProviderToken] = field(default_factory=dict)
    custom_secrets: dict[str, CustomSecret] = field(default_factory=dict)

    def environment(self, providers: list[ProviderType] | None) -> dict[str, str]:
        """Environment variables for a conversation's shell.

        ``providers`` chooses which provider tokens to pass; None passes all stored ones.
        A custom secret of the same name as a token variable wins over the token. Secrets
        that ``refused()`` names are left out.
        """
        env: dict[str, str] = {}
        for provider, token in self.provider_tokens.items():
            if (providers is None or provider in providers) and "\0" not in token.token:
                env[PROVIDER_ENV_VARS[provider]] = token.token
        env.update({variable: secret.secret for variable, secret in self._passed_on()})
        return env

    def descriptions(self) -> dict[str, str]:
        """The custom secrets passed on, as the shell has them: variable name -> the
        description the user gave (never a value)."""
        return {variable: secret.description for variable, secret in self._passed_on()}

    def _passed_on(self) -> list[tuple[str, CustomSecret]]:
        """The custom secrets a shell gets, each with its variable's name: all but those
        ``refused()`` names."""
        refused = self.refused()
        return [
            (name.upper(), secret)
            for name, secret in self.custom_secrets.items()
            if name not in refused
        ]

    def refused(self) -> dict[str, str]:
        """Stored custom secrets that may no longer be passed on (saved before the rules of
        ``secret_rules`` existed), with the reason: name -> reason."""
        refused: dict[str, str] = {}
        for name, secret in self.custom_secrets.items():
            reason = refused_name_reason(name) or refused_value_reason(secret.secret)
            if reason is not None:
                refused[name] = reason
        return refused
