"""Settings: the one configuration object, read from ``CONVO_*`` environment variables.

Built once at an entry point (``cli`` or ``api.app.create_app``) and passed down; no other
module reads the environment.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_OLD_NETWORK_VALUES = {"true": "host", "1": "host", "false": "none", "0": "none"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVO_", extra="ignore")

    # where things live
    data_dir: Path = Field(default=Path("~/.convo"), description="SQLite database and workspaces.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default SQLite in the data dir. "
        "postgresql+asyncpg://user@host/db for PostgreSQL.",
    )

    workspaces_dir: Path | None = Field(
        default=None,
        description="Where conversations' workspaces live; default: workspaces in the data "
        "dir. In a cluster, a volume every node mounts at the same path.",
    )

    # cluster mode: several servers on one PostgreSQL database, coordinated through Redis
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://host:6379/0: with a PostgreSQL CONVO_DATABASE_URL, servers "
        "sharing the database form one cluster (refused with SQLite).",
    )
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Cluster mode: how long a server owns a running conversation without "
        "renewing (renewed every third of it); another server takes it over after that.",
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Server log level; debug also shows the traceback of a start-up error.",
    )

    # auth
    session_api_key: SecretStr | None = Field(
        default=None, description="When set, /api/* needs header X-Session-API-Key."
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key sealing stored secrets and tokens; default: the data dir's "
        "secrets.key (created 0600).",
    )

    # request limits
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body (413 above)."
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        description="Largest multipart upload body (upload-files; 413 above).",
    )

    allow_unauthenticated_remote: bool = Field(
        default=False,
        description="Let `convo serve` listen on a non-loopback address with no session key "
        "(anyone who reaches the port then controls the server).",
    )

    # server-wide default LLM
    llm_model: str | None = Field(
        default=None, description="litellm model name, e.g. openai/gpt-4o."
    )
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key for the default LLM.")
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_num_retries: int = Field(default=2, ge=0)

    # agent
    max_iterations: int = Field(default=100, ge=1, description="Agent steps per task.")
    max_budget_per_task: float | None = Field(default=None, description="USD per task.")

    # long tasks: condensation of the LLM's context
    condense_after_events: int | None = Field(
        default=120,
        ge=4,
        description="Summarise older events once the LLM would see more than this many "
        "(None: only on the context window).",
    )
    llm_max_input_tokens: int | None = Field(
        default=None,
        ge=1000,
        description="The model's context window in tokens; default: litellm's model list.",
    )

    # repositories
    git_user_name: str = Field(default="convo-agent", description="Local git identity in clones.")
    git_user_email: str = Field(default="convo-agent@localhost")
    clone_timeout_seconds: float = Field(default=300.0, gt=0)
    setup_script_timeout_seconds: float = Field(
        default=600.0, gt=0, description="For a repository's .openhands/setup.sh."
    )

    # conversations
    max_concurrent_conversations: int = Field(default=3, ge=1, description="Running, per user.")
    idle_close_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Close a loop (the conversation becomes STOPPED) when its agent has not "
        "worked for this long and nobody listens. 0: never.",
    )
    sandbox_idle_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Release a sandbox (kill its shell and processes; the workspace stays) "
        "when its agent has not worked for this long, listened to or not; the conversation "
        "stays RUNNING and the agent's next command gets a new sandbox. 0: never.",
    )
    reconcile_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often stored state (which conversations should run) is reconciled "
        "with the loops that run, idle loops are closed and metadata is flushed.",
    )
    stop_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a stop waits for a loop to end (its sandbox closed) before "
        "answering that it is still stopping.",
    )
    idempotency_key_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="How long a create's Idempotency-Key finds the conversation it made; "
        "after that the key may make a new one.",
    )
    on_restart: Literal["resume", "stop"] = Field(
        default="resume",
        description="Conversations that were running when the server stopped or crashed: "
        "resume them on start-up, or mark them stopped with an event saying why.",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="On SIGTERM/SIGINT: the whole time the server takes to exit. Running "
        "commands get up to half of it to finish before their loops are stopped.",
    )
    metadata_flush_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Write a running conversation's last-updated time, cost and token counts "
        "at most this often (and at every agent state change and stop).",
    )

    # database: pool, timeouts, and what a loop does when a write fails
    db_pool_size: int = Field(default=10, ge=1, description="PostgreSQL connections kept open.")
    db_max_overflow: int = Field(
        default=10, ge=0, description="PostgreSQL connections opened beyond the pool at peaks."
    )
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for a free PostgreSQL connection."
    )
    db_statement_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="A statement (or a transaction left idle) taking longer fails instead of "
        "hanging its request: PostgreSQL statement and idle-in-transaction timeouts, client "
        "command timeout; SQLite busy timeout.",
    )
    db_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait for a new PostgreSQL connection."
    )
    storage_retry_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A running conversation whose write fails (database unreachable, disk "
        "full) retries it this long, with backoff, then ends its loop; it is resumed once the "
        "database is back.",
    )
    storage_retry_max_delay_seconds: float = Field(
        default=5.0, gt=0, description="Longest pause between two tries of a failed write."
    )
    disk_reserve_mb: int = Field(
        default=8,
        ge=0,
        description="Space kept in the data dir (a placeholder file) and released when the "
        "disk fills up, so that conversations can still store an event saying so.",
    )
    stalled_loop_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A loop whose agent is running but stored nothing for this long is "
        "restarted by the supervisor (keep it above the command and LLM timeouts).",
    )

    # runtime
    runtime: Literal["auto", "sandbox", "process"] = Field(
        default="auto", description="auto: sandbox where bubblewrap works, else process."
    )
    sandbox_network: Literal["isolated", "none", "host"] = Field(
        default="isolated",
        description="isolated: sandboxed commands reach the outside world but nothing of this "
        "host (its loopback, link-local, its own addresses; needs root and slirp4netns). "
        "none: no network. host: the host's network, this server's API included (unsafe). "
        "The old true/false mean host/none.",
    )
    workspace_disk_mb: int = Field(
        default=5120,
        ge=0,
        description="Disk space one conversation's workspace may use (largest file too); "
        "a conversation over it is stopped with an error event. 0: no limit.",
    )
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="Creating or starting a conversation is refused while the data dir's "
        "disk has less free space than this.",
    )
    command_timeout_seconds: float = Field(default=120.0, gt=0)
    max_output_chars: int = Field(default=30_000, ge=1000)

    @field_validator("sandbox_network", mode="before")
    @classmethod
    def _old_network_values(cls, value: object) -> object:
        """CONVO_SANDBOX_NETWORK was a boolean: true meant the host's network, false none."""
        if isinstance(value, bool):
            return "host" if value else "none"
        if isinstance(value, str) and value.strip().lower() in _OLD_NETWORK_VALUES:
            return _OLD_NETWORK_VALUES[value.strip().lower()]
        return value

    @field_validator("redis_url")
    @classmethod
    def _cluster_needs_postgresql(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        database_url = info.data.get("database_url") or ""
        if value is not None and not str(database_url).startswith("postgresql"):
            raise ValueError(
                "cluster mode needs PostgreSQL: set CONVO_DATABASE_URL to a postgresql+asyncpg "
                "URL, or unset CONVO_REDIS_URL to run one server on SQLite"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir() / 'convo.db'}"

    def resolved_workspaces_dir(self) -> Path:
        if self.workspaces_dir is not None:
            return self.workspaces_dir.expanduser().resolve()
        return self.resolved_data_dir() / "workspaces"

    @property
    def cluster_mode(self) -> bool:
        """Several servers share the PostgreSQL database, coordinated through Redis."""
        return self.redis_url is not None


def remote_bind_refusal(settings: Settings, host: str) -> str | None:
    """Why `convo serve` must not listen on ``host`` (None: it may): a non-loopback address
    with no session key needs CONVO_ALLOW_UNAUTHENTICATED_REMOTE=true."""
    if settings.session_api_key is not None or settings.allow_unauthenticated_remote:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False  # a host name: it may resolve to anything
    if loopback:
        return None
    return (
        f"refusing to serve on {host} without a session key: anyone who reaches it would "
        "control this server; set CONVO_SESSION_API_KEY, listen on 127.0.0.1, or set "
        "CONVO_ALLOW_UNAUTHENTICATED_REMOTE=true"
    )
