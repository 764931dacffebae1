"""The sandbox's network: ``isolated`` (default), ``none`` or ``host``.

``isolated``: a sandboxed command reaches the outside world (package indexes, git hosts)
and nothing of the host. The sandbox gets its own network namespace, created by the
launcher while it is still root, so the namespace belongs to the initial user namespace:
nothing inside the sandbox (whose processes run in a user namespace of their own, with no
capabilities, as an unprivileged uid on the host) can ever hold CAP_NET_ADMIN over it, so
no agent, even "root" in its own user namespace, can change its routes or interfaces.
Its only way out is `slirp4netns <https://github.com/rootless-containers/slirp4netns>`_, a
user-mode TCP/IP stack (libslirp, as in QEMU) that turns the sandbox's packets into
ordinary ``connect()``/``sendto()`` calls of a process on the host. Because those calls
start from the host's own network stack, three things are closed explicitly:

* the host's loopback: ``--disable-host-loopback`` (slirp4netns would otherwise map its
  gateway address to the host's 127.0.0.1), and 127.0.0.0/8 and ::1 inside the sandbox are
  the sandbox's own loopback;
* link-local (169.254.0.0/16, so cloud metadata services) and the host's own addresses (read
  from the kernel's local routing table when the sandbox starts), plus the stack's gateway
  address: ``prohibit`` routes in the sandbox's namespace, so ``connect()`` fails at once
  with "Permission denied";
* IPv6: off on the sandbox's outside interface (slirp4netns's IPv6 is experimental), so
  fe80::/10 and the host's IPv6 addresses are unreachable; ::1 is the sandbox's own.

slirp4netns itself runs with ``--enable-sandbox`` (its own empty root, no capabilities
but CAP_NET_BIND_SERVICE) and ``--enable-seccomp``, in the sandbox's cgroup, and dies
with the sandbox. DNS goes to its forwarder (10.0.2.3), which asks the host's resolvers.

Why slirp4netns rather than pasta (passt): both are Debian packages; slirp4netns 1.2 is the
mature one, needs no port-forwarding options switched off (pasta forwards the namespace's
ports to the host by default) and has the host-loopback switch named in its interface.

Cost (``python -m bench.sandbox_figures``, README's performance table): one slirp4netns
process per sandbox (about 3-4 MB RSS, under 1 MB PSS) and a few milliseconds of start-up;
throughput is that of a user-mode stack (hundreds of Mbit/s), plenty for package installs.

What it does not cover: addresses the host gains after a sandbox started; other machines
of the host's own networks (only the host's addresses are refused, not its neighbours);
the host's resolver, which answers DNS questions through the forwarder. Isolation needs
the server to run as root (the namespace is made before the launcher drops privileges).

``none``: a namespace with only a loopback. ``host``: the host's own namespace, as before
this setting existed; the sandbox then reaches everything the host does (this server's
API, local databases), and convo warns at start-up and in ``/health``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from convo.errors import SandboxUnavailable

NetworkMode = Literal["isolated", "none", "host"]


_ALWAYS_REFUSED = ("0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32")
_CANDIDATE_CIDRS = ("10.0.2.0/24", "10.41.2.0/24", "172.30.2.0/24", "192.168.242.0/24")
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def network_warning(mode: NetworkMode) -> str | None:
    """What to warn about at start-up and in /health for ``mode`` (None: nothing)."""
    if mode == "host":
        return (
            "CONVO_SANDBOX_NETWORK=host: sandboxed commands share this host's network and can "
            "reach its loopback (this server's API, local databases) and cloud metadata; use "
            "'isolated'"
        )
    if mode == "isolated" and os.geteuid() != 0:
        return (
            "CONVO_SANDBOX_NETWORK=isolated needs the server to run as root: sandboxed "
            "conversations will not start; run as root or set CONVO_SANDBOX_NETWORK=none"
        )
    if mode == "isolated" and shutil.which("slirp4netns", path=_SEARCH_PATH) is None:
        return (
            "CONVO_SANDBOX_NETWORK=isolated needs slirp4netns (make system-deps): sandboxed "
            "conversations will not start until it is installed"
        )
    return None


def host_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> list[str]:
    """The IPv4 networks this host answers on as its own (kernel's local routes), with
    prefix length; loopback left out (the sandbox has its own)."""
    found: list[str] = []
    last = ""
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        text = line.strip()
        if text.startswith("|-- "):
            last = text[4:]
        elif text.endswith(" host LOCAL") and last:
            network = f"{last}{text.split()[0]}"
            if not ipaddress.ip_network(network, strict=False).is_loopback and network not in found:
                found.append(network)
    return found


@dataclass(frozen=True)
class IsolatedNetwork:
    """What the launcher needs to give a sandbox its isolated namespace."""

    slirp4netns: str  # absolute path
    cidr: str  # the user-mode network's range; the sandbox is .100, the gateway .2
    refused: tuple[str, ...]  # networks the sandbox may not reach

    @property
    def dns(self) -> str:
        return str(ipaddress.ip_network(self.cidr)[3])


def _free_cidr(own: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    for candidate in _CANDIDATE_CIDRS:
        network = ipaddress.ip_network(candidate)
        if not any(network.overlaps(address) for address in own):
            return candidate
    raise SandboxUnavailable("No free private range for the sandbox's network")


def isolated_network(slirp4netns: str = "slirp4netns") -> IsolatedNetwork:
    """Blocking (reads /proc): the isolated network for a sandbox starting now.

    Raises SandboxUnavailable when slirp4netns is missing."""
    path = shutil.which(slirp4netns, path=_SEARCH_PATH)
    if path is None:
        raise SandboxUnavailable(
            f"{slirp4netns} not found: CONVO_SANDBOX_NETWORK=isolated needs it "
            "(make system-deps), or set CONVO_SANDBOX_NETWORK=none"
        )
    own = host_addresses()
    cidr = _free_cidr([ipaddress.ip_network(a, strict=False) for a in own])
    gateway = f"{ipaddress.ip_network(cidr)[2]}/32"
    refused = tuple(dict.fromkeys((*_ALWAYS_REFUSED, gateway, *own)))
    return IsolatedNetwork(path, cidr, refused)
