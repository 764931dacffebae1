"""check-config and start-up errors show no database password, wherever the URL holds it."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli.conftest import cli_env, convo

PASSWORD = "Query-Held-Pw-7d1e"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_check_config_hides_a_password_given_as_a_query_parameter(tmp_path: Path) -> None:
    url = (
        f"postgresql+asyncpg://convo@127.0.0.1:{_closed_port()}/convo"
        f"?sslmode=disable&password={PASSWORD}"
    )
    env = cli_env(tmp_path / "data", {"CONVO_DATABASE_URL": url, "CONVO_RUNTIME": "process"})
    for args in (("check-config",), ("check-config", "--json")):
        result = await convo(*args, env=env)
        assert result.code == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert "sslmode=disable" in result.stdout  # the rest of the URL is still shown
