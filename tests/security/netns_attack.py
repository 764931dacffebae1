"""Run inside a network namespace the test made (``unshare --net``): a scripted agent tries to
reach everything of "the host" from its sandbox.

The namespace stands for the host: its loopback, plus a veth pair whose end ``convo-h0``
carries "the host's own address" (10.77.0.1), a link-local "metadata" address
(169.254.169.254) and an IPv6 link-local one (fe80::77). A listener on each, on 127.0.0.1
and ::1, counts the connections it accepts; the agent also tries the server's own port.
The same attack runs against a server with ``CONVO_SANDBOX_NETWORK=isolated`` and one with
``host`` (the control: there, the agent must reach them, or the attack proves nothing).

``python -m tests.security.netns_attack WORKDIR`` prints one JSON line: per mode, what the
agent printed for each target and how many connections each listener accepted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import free_port

from tests.security.attacker import attacker_server, outputs

DEVICE = "convo-h0"
HOST_ADDRESS = "10.77.0.1"
METADATA = "169.254.169.254"
LINK_LOCAL6 = "fe80::77"
SETUP = [
    "link set lo up",
    f"link add {DEVICE} type veth peer name convo-h1",
    f"addr add {HOST_ADDRESS}/24 dev {DEVICE}",
    f"addr add {METADATA}/16 dev {DEVICE}",
    f"addr add {LINK_LOCAL6}/64 dev {DEVICE} nodad",
    f"link set {DEVICE} up",
    "link set convo-h1 up",
]


def attack_script(targets: dict[str, tuple[str, int]]) -> str:
    """The agent's command: a TCP connection to each target, then a line saying how it went."""
    return (
        "python3 - <<'EOF'\n"
        "import socket\n"
        f"for name, (host, port) in {targets!r}.items():\n"
        "    try:\n"
        "        family, kind, proto, _, address = socket.getaddrinfo(host, port)[0][:5]\n"
        "        with socket.socket(family, socket.SOCK_STREAM) as s:\n"
        "            s.settimeout(3)\n"
        "            s.connect(address)\n"
        "            s.sendall(b'attack')\n"
        "        print('REACHED', name)\n"
        "    except Exception as exc:\n"
        "        print('BLOCKED', name, type(exc).__name__, exc)\n"
        "EOF"
    )


async def _listen(host: str, counts: dict[str, int], name: str) -> asyncio.Server:
    counts[name] = 0

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts[name] += 1
        writer.close()

    return await asyncio.start_server(accepted, host, 0)


async def attack(workdir: Path, mode: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    listeners = {
        "loopback": await _listen("127.0.0.1", counts, "loopback"),
        "loopback6": await _listen("::1", counts, "loopback6"),
        "own_address": await _listen(HOST_ADDRESS, counts, "own_address"),
        "metadata": await _listen(METADATA, counts, "metadata"),
        "link_local6": await _listen(f"{LINK_LOCAL6}%{DEVICE}", counts, "link_local6"),
    }
    ports = {name: server.sockets[0].getsockname()[1] for name, server in listeners.items()}
    targets = {
        "loopback": ("127.0.0.1", ports["loopback"]),
        "loopback6": ("::1", ports["loopback6"]),
        "own_address": (HOST_ADDRESS, ports["own_address"]),
        "metadata": (METADATA, ports["metadata"]),
        "link_local6": (f"{LINK_LOCAL6}%{DEVICE}", ports["link_local6"]),
        "link_local6_tap": (f"{LINK_LOCAL6}%tap0", ports["link_local6"]),
    }
    port = free_port()
    targets["server"] = ("127.0.0.1", port)  # this server's own API
    try:
        async with attacker_server(
            workdir / mode, [attack_script(targets)], port=port, sandbox_network=mode
        ) as server:
            _conversation, events = await server.run()
            text = outputs(events)
    finally:
        for listener in listeners.values():
            listener.close()
    return {"mode": mode, "output": text, "accepted": counts, "targets": list(targets)}


async def main(workdir: Path) -> None:
    done = subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(SETUP).encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        print(json.dumps({"setup_error": done.stderr.decode()}))
        return
    results = [await attack(workdir, mode) for mode in ("isolated", "host")]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
