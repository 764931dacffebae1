"""Cluster settings: Redis only with PostgreSQL, a lease time, a workspaces dir of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from convo.cli.errors import CliError, load_settings
from convo.cluster.node import new_node_id
from convo.config import Settings


def test_redis_with_sqlite_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVO_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.delenv("CONVO_DATABASE_URL", raising=False)
    with pytest.raises(CliError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert "CONVO_REDIS_URL" in message and "PostgreSQL" in message
    assert "6379" not in message  # the URL may hold a password: not shown


def test_redis_with_postgresql_is_cluster_mode() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://convo@127.0.0.1/convo",
        redis_url="redis://127.0.0.1:6379/0",  # type: ignore[arg-type]
    )
    assert settings.cluster_mode
    assert not Settings(database_url="postgresql+asyncpg://convo@127.0.0.1/convo").cluster_mode


def test_lease_seconds_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        Settings(lease_seconds=0)
    assert Settings().lease_seconds == 15


def test_workspaces_live_in_the_data_dir_unless_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.resolved_workspaces_dir() == (tmp_path / "data" / "workspaces").resolve()
    shared = Settings(data_dir=tmp_path / "data", workspaces_dir=tmp_path / "shared")
    assert shared.resolved_workspaces_dir() == (tmp_path / "shared").resolve()


def test_node_ids_differ_between_processes_and_restarts() -> None:
    assert new_node_id() != new_node_id()
