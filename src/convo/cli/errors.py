"""How the ``convo`` command ends: exit codes, and errors a person can read.

A :class:`CliError` is printed as one or two lines (``convo: ...``) naming the environment
variable, option or server concerned and what to do; no traceback unless ``--debug`` or
``CONVO_LOG_LEVEL=debug``. Start-up failures from below (invalid settings, the database, the
data dir) are translated here.
"""

from __future__ import annotations

import errno
from enum import IntEnum
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from pathlib import Path

    from convo.config import Settings


class ExitCode(IntEnum):
    """``convo run`` and ``convo tail`` end with the first four; every command may end with
    USAGE (bad option, invalid configuration, start-up failure) or UNREACHABLE."""

    FINISHED = 0  # the agent finished its task
    ERROR = 1  # the agent (or the request) ended in an error
    USAGE = 2  # bad option or configuration; the server could not start
    STOPPED = 3  # the conversation was stopped (Ctrl-C, convo stop, the server)
    AWAITING_INPUT = 4  # the agent asks the user something and waits
    UNREACHABLE = 5  # the convo server could not be reached, or went away
    INTERRUPTED = 130  # a second Ctrl-C: left without waiting for the stop


class CliError(Exception):
    """An error for the person at the terminal: its text is the whole message."""

    def __init__(self, message: str, exit_code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_PASSWORD_PARAMETERS = {"password", "passwd", "pwd", "sslpassword"}


def hide_password(url: str) -> str:
    """The URL with the password of its user part, and any query parameter that carries one
    (libpq and asyncpg read ``?password=``), replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() in _PASSWORD_PARAMETERS for key, _ in query):
        hidden = [(k, "***" if k.lower() in _PASSWORD_PARAMETERS else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
        url = urlunsplit(parts)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _secret_fields() -> set[str]:
    from convo.config import Settings

    hidden = {"database_url"}
    for name, field in Settings.model_fields.items():
        if "SecretStr" in repr(field.annotation) or field.annotation is SecretStr:
            hidden.add(name)
    return hidden


def settings_error(exc: ValidationError) -> CliError:
    """An invalid CONVO_* value, named, with what is allowed."""
    secret = _secret_fields()
    lines = []
    for error in exc.errors()[:3]:
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = f"CONVO_{field.upper()}"
        shown = "" if field in secret else f"={error.get('input')!r}"
        lines.append(f"{variable}{shown} is not valid: {error['msg']}; fix or unset it")
    return CliError("\n".join(lines))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and the given fields), or a CliError saying what to fix."""
    from convo.config import Settings

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise settings_error(exc) from exc


class _DebugSwitch(BaseSettings):
    """Read alone, so that ``CONVO_LOG_LEVEL=debug`` works even when Settings is invalid."""

    model_config = SettingsConfigDict(env_prefix="CONVO_", extra="ignore")
    log_level: str = ""


def debug_from_environment() -> bool:
    try:
        return _DebugSwitch().log_level.strip().lower() == "debug"
    except ValidationError:
        return False


def data_dir_error(path: Path, exc: Exception) -> CliError:
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    reason = getattr(cause, "strerror", None) or str(cause)
    return CliError(
        f"the data dir {path} cannot be written ({reason}); set CONVO_DATA_DIR to a "
        "directory this user may write, or fix its permissions"
    )


def database_error(settings: Settings, exc: BaseException) -> CliError:
    cause = exc.__cause__ or exc
    reason = f"{type(cause).__name__}: {cause}".strip().rstrip(":")
    if settings.database_url:
        return CliError(
            f"cannot open the database CONVO_DATABASE_URL={hide_password(settings.database_url)}"
            f" ({reason[:200]})\nstart that database server, or fix CONVO_DATABASE_URL"
        )
    return CliError(
        f"cannot open the SQLite database in {settings.resolved_data_dir()} ({reason[:200]})\n"
        "check that CONVO_DATA_DIR is a writable directory on a disk with free space"
    )


def port_error(host: str, port: int, exc: OSError) -> CliError:
    if exc.errno == errno.EADDRINUSE:
        return CliError(
            f"port {port} on {host} is already in use; choose another with --port, or stop "
            "the program that listens there"
        )
    return CliError(
        f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port"
    )
