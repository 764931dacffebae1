"""Secrets reach the agent's shell, never a process on the host.

Secrets are planted straight into storage (the API refuses a name like LD_PRELOAD, and a
stored one is withheld; this checks the layer below, should either ever let one through):
while the agent's command runs, every process the server started on the host (the launcher
that became bwrap, slirp4netns) has the fixed minimal environment and nothing else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from convo.domain.conversation import CustomSecret, UserSecrets
from convo.storage import open_storage
from convo.storage.at_rest import load_sealer
from tests.polling import wait_until
from tests.security.attacker import attacker_server, environ, host_processes

MINIMAL = {"PATH", "LANG", "HOME", "TERM", "PS1", "PS2", "PYTHONUNBUFFERED"}


async def _plant(data_dir: Path, planted: dict[str, str]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(
        f"sqlite+aiosqlite:///{data_dir / 'convo.db'}", load_sealer(data_dir, None)
    )
    try:
        await storage.migrate()
        custom = {name: CustomSecret(value) for name, value in planted.items()}
        await storage.settings.save_secrets(None, UserSecrets(custom_secrets=custom))
    finally:
        await storage.aclose()


@pytest.mark.timeout(180)
async def test_no_host_process_ever_has_a_secret_in_its_environment(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "run as root: the sandbox then drops to an unprivileged uid"
    canary = f"canary-{secrets.token_hex(8)}"
    await _plant(
        tmp_path / "data",
        {"CANARY_TOKEN": canary, "LD_PRELOAD": "/workspace/evil.so", "BASH_ENV": "/workspace/x"},
    )
    command = 'printf %s "$CANARY_TOKEN" > canary.txt; sleep 20; echo slept'
    async with attacker_server(tmp_path, [command]) as attack:
        created = await attack.client.post("/api/conversations", json={"initial_user_msg": "go"})
        cid = created.json()["conversation_id"]
        proof = tmp_path / "data" / "workspaces" / cid / "canary.txt"
        await wait_until(proof.exists, 60, 0.1, "the agent's command to run")
        await wait_until(lambda: proof.read_text() == canary, 10, 0.05, "the canary")

        processes = host_processes(attack.server)
        names = [os.path.basename(p.cmdline()[0]) for p in processes]
        assert "bwrap" in names and "slirp4netns" in names, names
        for process in processes:
            env = environ(process.pid)
            assert set(env) <= MINIMAL, (process.cmdline()[:3], sorted(env))
            assert canary not in "".join(env.values()), process.cmdline()[:3]
        await attack.wait_ended(cid, 60)
