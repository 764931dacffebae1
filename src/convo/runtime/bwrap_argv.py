"""The command lines of a bubblewrap sandbox: bwrap's mounts and namespaces, and the
launcher in front of it (see :mod:`convo.runtime.launcher`).

What the sandbox sees of the host is decided here: a read-only ``/usr`` (plus the ``/bin``,
``/lib*`` links), an allow-list of ``/etc``, the workspace at ``/workspace``, size-capped
tmpfs ``/tmp`` and ``/dev/shm``, a fresh ``/proc`` and a read-only ``/dev``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path, PurePosixPath

from convo.errors import SandboxUnavailable
from convo.runtime.launcher import LAUNCHER
from convo.runtime.network import IsolatedNetwork, NetworkMode
from convo.runtime.process import DEFAULT_PATH

MOUNT = PurePosixPath("/workspace")
NOBODY = 65534
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC = {
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "debian_version",
    "fonts", "gai.conf", "gitconfig", "group", "host.conf", "hostname", "hosts", "inputrc",
    "locale.alias", "localtime", "magic", "magic.mime", "mime.types", "netconfig", "networks",
    "nsswitch.conf", "os-release", "passwd", "perl", "profile", "protocols", "resolv.conf",
    "services", "shells", "sgml", "ssl", "terminfo", "timezone", "vim", "xml",
}  # fmt: skip
_ETC_PREFIXES = ("java", "ld.so", "python")
# Where the launcher may stage the workspace (a tmpfs covers the first that does not
# contain it), when it drops to an unprivileged uid.
_COVERS = ("/tmp", "/mnt", "/srv", "/media", "/opt")


def bwrap_argv(
    bwrap: str,
    *,
    workspace: str,
    network: NetworkMode,
    tmp_size_bytes: int | None,
    resolv_conf: str | None = None,
) -> list[str]:
    """The bwrap command line (without the command to run inside). ``network``: ``host``
    shares the host's namespace, ``isolated`` stays in the one the launcher made, ``none``
    gets a new one with only a loopback. ``resolv_conf``: a host file bound at
    /etc/resolv.conf instead of the host's own."""
    argv = [bwrap, "--die-with-parent", "--unshare-all", "--hostname", "sandbox"]
    if network != "none":
        argv.append("--share-net")
    argv += ["--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    argv += ["--dir", "/etc"]
    for name in sorted(os.listdir("/etc")):
        if resolv_conf is not None and name == "resolv.conf":
            continue
        if name in _ETC or name.startswith(_ETC_PREFIXES):
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    if resolv_conf is not None:
        argv += ["--ro-bind", resolv_conf, "/etc/resolv.conf"]
    argv += ["--bind", workspace, str(MOUNT)]
    size = ["--size", str(tmp_size_bytes)] if tmp_size_bytes is not None else []
    argv += [*size, "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    # /dev is a tmpfs (memory) that bwrap leaves writable and uncapped: read-only, with a
    # /dev/shm as small as /tmp (no workspace quota sees memory; a cgroup may not either)
    argv += [*size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--chdir", str(MOUNT)]
    return [*argv, "--remount-ro", "/"]  # the sandbox's own root (a tmpfs) too


def sandbox_uid(uid: int | None) -> int:
    """The host uid the sandbox runs as; -1 keeps the server's (when it is not root)."""
    if uid is not None:
        return uid
    return NOBODY if os.geteuid() == 0 else -1


def launch_argv(
    bwrap: str,
    *,
    workspace: Path,
    network: NetworkMode,
    tmp_size_bytes: int | None,
    uid: int,
    cgroup_procs: list[str],
    isolated: IsolatedNetwork | None = None,
) -> list[str]:
    """Launcher (join cgroups, make the isolated network, drop to ``uid``) + bwrap, ending
    in ``--``: append the command; run it with :func:`clean_env`'s environment. Raises
    SandboxUnavailable when ``bwrap`` is not installed, or for an isolated network without
    root or without ``isolated`` (see :func:`convo.runtime.network.isolated_network`)."""
    binary = shutil.which(bwrap, path=DEFAULT_PATH)
    if binary is None:
        raise SandboxUnavailable(f"{bwrap} not found; install bubblewrap")
    if network == "isolated" and (uid < 0 or isolated is None):
        raise SandboxUnavailable(
            "CONVO_SANDBOX_NETWORK=isolated needs the server to run as root (it sets up the "
            "sandbox's network before dropping privileges); use 'none' or 'host' otherwise"
        )
    usable = (c for c in _COVERS if Path(c).is_dir() and not workspace.is_relative_to(c))
    cover = next(usable, "")
    if uid >= 0 and not cover:
        raise SandboxUnavailable(f"No directory to stage the workspace in among {_COVERS}")
    source = f"{cover}/convo-workspace" if uid >= 0 else str(workspace)
    inner = bwrap_argv(
        binary,
        workspace=source,
        network=network,
        tmp_size_bytes=tmp_size_bytes,
        resolv_conf=f"{cover}/convo-resolv.conf" if isolated is not None else None,
    )
    net = ("", "", "", "")
    if isolated is not None:
        refused = ",".join(isolated.refused)
        net = (isolated.slirp4netns, isolated.cidr, refused, isolated.dns)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, ":".join(cgroup_procs), str(uid)]
    return [*launcher, str(workspace), cover, *net, *inner, "--"]
