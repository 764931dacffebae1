"""The sandbox's network, attacked by a scripted agent through a real ``convo serve``.

With the default ``CONVO_SANDBOX_NETWORK=isolated`` the agent reaches nothing of the host:
not a listener on its 127.0.0.1 or ::1 (the server's own port included), not a link-local
address (cloud metadata), not the host's own address; with ``host`` (the control) the same
commands reach all of them. "The host" is a network namespace this test makes
(``unshare --net``), so no traffic goes to this machine's real addresses. The agent still
installs a package from the package index, where the index is reachable from here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convo.runtime.select import bwrap_available
from tests.security.attacker import attacker_server, outputs

ROOT = Path(__file__).resolve().parents[2]
HOST_TARGETS = ("loopback", "loopback6", "own_address", "metadata", "link_local6", "server")


def _require_isolation() -> None:
    assert os.geteuid() == 0, "an isolated sandbox network needs a root server (and test)"
    assert bwrap_available(), "bubblewrap cannot run here: `make system-deps` installs it"
    assert shutil.which("slirp4netns"), "slirp4netns is missing: `make system-deps` installs it"


@pytest.mark.timeout(300)
def test_the_agent_reaches_nothing_of_the_host(tmp_path: Path) -> None:
    _require_isolation()
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.security.netns_attack", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert "setup_error" not in report, report
    isolated, host = report["results"]
    assert isolated["mode"] == "isolated" and host["mode"] == "host"

    # the control: sharing the host's network, the agent reaches every listener
    for name in HOST_TARGETS:
        assert f"REACHED {name}" in host["output"], host["output"]
    assert all(count >= 1 for count in host["accepted"].values()), host["accepted"]

    # isolated: nothing, and no listener ever accepted a connection
    assert "REACHED" not in isolated["output"], isolated["output"]
    for name in isolated["targets"]:
        assert f"BLOCKED {name}" in isolated["output"], isolated["output"]
    assert set(isolated["accepted"].values()) == {0}, isolated["accepted"]


INSTALL = (
    "PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "
    "python3 -m pip install -q --no-cache-dir --target /workspace/pkgs six "
    "&& PYTHONPATH=/workspace/pkgs python3 -c 'import six; print(\"IMPORTED\", six.__name__)'"
)
REACHABLE = (
    "python3 -c \"import socket; socket.create_connection(('pypi.org', 443), 10); "
    "print('INDEX-REACHABLE')\""
)


@pytest.mark.timeout(240)
async def test_the_agent_still_installs_a_package_from_the_index(tmp_path: Path) -> None:
    _require_isolation()
    async with attacker_server(tmp_path, [REACHABLE, INSTALL]) as attack:
        _cid, events = await attack.run(timeout=200)
    text = outputs(events)
    if "INDEX-REACHABLE" not in text:
        reason = f"the package index is not reachable from this machine's sandbox: {text[-300:]}"
        print(reason)
        pytest.skip(reason)
    assert "IMPORTED six" in text, text[-2000:]
