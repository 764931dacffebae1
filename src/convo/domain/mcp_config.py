"""A user's MCP servers (``mcp_config`` in the settings), as OpenHands 0.53 describes them.

``sse_servers`` and ``shttp_servers`` are reached by the server over HTTP (a bare URL string
stands for ``{"url": ...}``, as in OpenHands); ``stdio_servers`` are programs started inside
the conversation's sandbox. API keys and the stdio servers' environment values are secrets:
``SecretStr`` here, masked in events, never logged. ``to_wire`` is what is stored;
``to_view`` is what ``GET /api/settings`` returns: every secret as ``HIDDEN``, which a save
that sends it back keeps (``keeping_hidden``), so the web client's screen round-trips without
the API ever returning a secret.
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_SERVERS = 32  # of each kind
HIDDEN = "<secret_hidden>"
DEFAULT_SHTTP_TIMEOUT = 60


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("URL cannot be empty")
    url = value.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError("URL scheme must be http, https, ws, or wss")
    if not parsed.netloc:
        raise ValueError("URL must include a valid domain/host")
    return url


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


class MCPSSEServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    url: str
    api_key: SecretStr | None = None

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> str:
        return _url(value)


class MCPSHTTPServerConfig(MCPSSEServerConfig):
    timeout: int | None = Field(default=DEFAULT_SHTTP_TIMEOUT, ge=1, le=3600)


class MCPStdioServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        name = value.strip() if isinstance(value, str) else value
        if isinstance(name, str) and not _SERVER_NAME.fullmatch(name):
            raise ValueError("Server name must be 1-64 letters, numbers, hyphens and underscores")
        return name

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        command = value.strip() if isinstance(value, str) else value
        if isinstance(command, str) and (not command or " " in command or "\0" in command):
            raise ValueError(
                "Command should be a single executable without spaces "
                "(use arguments field for parameters)"
            )
        return command

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, value: Any) -> Any:
        if isinstance(value, str):  # the web client's text field: shell-like words
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"Invalid argument format: {exc}") from None
        if isinstance(value, list) and any("\0" in str(a) for a in value):
            raise ValueError("An argument cannot contain NUL")
        return value or []

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, str):  # "KEY=VALUE,KEY2=VALUE2"
            pairs = [p.strip() for p in value.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError("Environment variables must be in KEY=VALUE format")
            value = dict(p.split("=", 1) for p in pairs)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or not _ENV_NAME.fullmatch(key.strip()):
                    raise ValueError(f"Invalid environment variable name {str(key)[:64]!r}")
                if isinstance(item, str) and "\0" in item:
                    raise ValueError(f"The value of {key} cannot contain NUL")
            return {key.strip(): item for key, item in value.items()}
        return value or {}


class MCPConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    sse_servers: list[MCPSSEServerConfig] = Field(default_factory=list, max_length=MAX_SERVERS)
    stdio_servers: list[MCPStdioServerConfig] = Field(default_factory=list, max_length=MAX_SERVERS)
    shttp_servers: list[MCPSHTTPServerConfig] = Field(default_factory=list, max_length=MAX_SERVERS)

    @model_validator(mode="before")
    @classmethod
    def _bare_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for kind in ("sse_servers", "shttp_servers"):
            servers = data.get(kind)
            if isinstance(servers, list):
                data[kind] = [{"url": s} if isinstance(s, str) else s for s in servers]
        return data

    @model_validator(mode="after")
    def _unique(self) -> MCPConfig:
        urls = [s.url for s in self.sse_servers] + [s.url for s in self.shttp_servers]
        if len(set(urls)) != len(urls):
            raise ValueError("Duplicate MCP server URLs are not allowed")
        names = [s.name for s in self.stdio_servers]
        if len(set(names)) != len(names):
            raise ValueError("Duplicate MCP stdio server names are not allowed")
        return self

    @property
    def empty(self) -> bool:
        return not (self.sse_servers or self.stdio_servers or self.shttp_servers)

    def to_wire(self) -> dict[str, Any]:
        """The stored and returned form, secrets in clear (the user's own values)."""
        return {
            "sse_servers": [
                {"url": s.url, "api_key": _secret(s.api_key)} for s in self.sse_servers
            ],
            "stdio_servers": [
                {
                    "name": s.name,
                    "command": s.command,
                    "args": list(s.args),
                    "env": {k: v.get_secret_value() for k, v in s.env.items()},
                }
                for s in self.stdio_servers
            ],
            "shttp_servers": [
                {"url": s.url, "api_key": _secret(s.api_key), "timeout": s.timeout}
                for s in self.shttp_servers
            ],
        }

    @classmethod
    def parse(cls, data: Any) -> MCPConfig:
        """Validated ``data``; a ValueError whose message quotes no value (it may be logged
        or shown in an event: the input holds API keys)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'mcp_config'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            ]
            raise ValueError("; ".join(problems[:5])) from None

    def to_view(self) -> dict[str, Any]:
        """``to_wire`` with every API key and environment value replaced by ``HIDDEN``."""
        view = self.to_wire()
        for server in [*view["sse_servers"], *view["shttp_servers"]]:
            if server["api_key"] is not None:
                server["api_key"] = HIDDEN
        for server in view["stdio_servers"]:
            server["env"] = dict.fromkeys(server["env"], HIDDEN)
        return view

    def keeping_hidden(self, stored: MCPConfig | None) -> MCPConfig:
        """This config (a save) with each ``HIDDEN`` value replaced by the stored value it
        stands for: the key of the server with the same URL, the variable of the stdio
        server with the same name. One that stands for nothing stays as sent."""
        if stored is None:
            return self
        keys = {s.url: s.api_key for s in [*stored.sse_servers, *stored.shttp_servers]}
        envs = {s.name: s.env for s in stored.stdio_servers}

        def key(server: MCPSSEServerConfig) -> MCPSSEServerConfig:
            if server.api_key is None or server.api_key.get_secret_value() != HIDDEN:
                return server
            return server.model_copy(update={"api_key": keys.get(server.url, server.api_key)})

        def env(server: MCPStdioServerConfig) -> MCPStdioServerConfig:
            old = envs.get(server.name, {})
            values = {
                name: old.get(name, value) if value.get_secret_value() == HIDDEN else value
                for name, value in server.env.items()
            }
            return server.model_copy(update={"env": values})

        return self.model_copy(
            update={
                "sse_servers": [key(s) for s in self.sse_servers],
                "shttp_servers": [key(s) for s in self.shttp_servers],
                "stdio_servers": [env(s) for s in self.stdio_servers],
            }
        )

    def secret_values(self) -> list[str]:
        """Every API key and stdio environment value, to mask in events."""
        keys = [s.api_key for s in [*self.sse_servers, *self.shttp_servers]]
        values = [_secret(k) for k in keys]
        values += [v.get_secret_value() for s in self.stdio_servers for v in s.env.values()]
        return [v for v in values if v]
