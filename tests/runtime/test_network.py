"""The network settings and helpers: modes, the host's addresses, the serve guard, exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from convo.config import Settings, remote_bind_refusal
from convo.runtime.network import host_addresses, network_warning
from convo.runtime.process import export_script
from tests.api.conftest import make_settings, serve

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 10.77.0.0/24 2 0 2
           |-- 10.77.0.0
              /24 link UNICAST
           |-- 10.77.0.1
              /32 host LOCAL
        |-- 10.77.0.255
           /32 link BROADCAST
Local:
     +-- 10.77.0.0/24 2 0 2
           |-- 10.77.0.1
              /32 host LOCAL
"""


def test_the_hosts_own_addresses_come_from_its_local_routes(tmp_path: Path) -> None:
    trie = tmp_path / "fib_trie"
    trie.write_text(FIB_TRIE)
    assert host_addresses(trie) == ["10.77.0.1/32"]
    assert host_addresses(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("isolated", "isolated"),
        ("none", "none"),
        ("host", "host"),
        ("true", "host"),
        ("false", "none"),
    ],
)
def test_network_modes_and_the_old_boolean_values(
    monkeypatch: pytest.MonkeyPatch, value: str, mode: str
) -> None:
    monkeypatch.setenv("CONVO_SANDBOX_NETWORK", value)
    assert Settings().sandbox_network == mode


def test_the_host_network_is_warned_about() -> None:
    warning = network_warning("host")
    assert warning is not None and "loopback" in warning
    assert network_warning("none") is None


def test_serving_remotely_without_a_key_is_refused_unless_said() -> None:
    assert remote_bind_refusal(Settings(), "127.0.0.1") is None
    assert remote_bind_refusal(Settings(), "::1") is None
    assert remote_bind_refusal(Settings(), "localhost") is None
    refusal = remote_bind_refusal(Settings(), "0.0.0.0")
    assert refusal is not None and "CONVO_SESSION_API_KEY" in refusal
    assert remote_bind_refusal(Settings(), "example.internal") is not None
    assert remote_bind_refusal(Settings(session_api_key="k"), "0.0.0.0") is None
    assert remote_bind_refusal(Settings(allow_unauthenticated_remote=True), "0.0.0.0") is None


def test_convo_serve_says_so_in_one_line_and_exits(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convo", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "CONVO_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0" in lines[0], lines


def test_exports_quote_values_and_leave_out_what_no_shell_can_hold() -> None:
    script = export_script({"GOOD": "a'b $x", "BAD-NAME": "v", "NUL": "a\0b", "LD_PRELOAD": "x"})
    assert "export 'GOOD=a'\"'\"'b $x'\n" in script
    assert "BAD-NAME" not in script and "NUL" not in script
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script + 'printf %s "$GOOD"'],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stdout == b"a'b $x"


async def test_health_warns_about_the_host_network(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, runtime="sandbox", sandbox_network="host")
    async with serve(settings) as server:
        health = (await server.client.get("/health")).json()
    assert any("CONVO_SANDBOX_NETWORK=host" in w for w in health.get("warnings", [])), health
