"""The bubblewrap sandbox: the persistent bash runs confined to its workspace.

Inside, the agent sees a read-only ``/usr`` (plus the ``/bin``, ``/lib*`` links), an
allow-list of ``/etc`` (no shadow files, ssh keys or package-manager credentials), its
workspace read-write at ``/workspace`` (also ``$HOME``), a private size-capped tmpfs
``/tmp``, a fresh ``/proc`` and a minimal read-only ``/dev`` (its ``/dev/shm`` capped like
``/tmp``). Nothing else of the host exists there:
not the server's data directory or database, not other conversations' workspaces, not
``/root``. Every namespace is new (``--unshare-all``); the network is the factory's
``network`` mode (see :mod:`convo.runtime.network`). A new PID namespace means ``close()`` (which
kills bwrap, whose in-sandbox init then takes every process down with it) leaves nothing
behind, not even processes that called ``setsid``.

When the server runs as root, bwrap itself is started as an unprivileged uid (65534 by
default): the sandbox's processes have that uid on the host too, no capabilities, no
access to root-owned files, and a per-user-namespace process count that RLIMIT_NPROC can
limit. That uid may not be allowed to walk the path to the workspace (``~/.convo`` under
``/root``), so the launcher stages it first (see LAUNCHER); the workspace is chowned to
the uid at start, and files the server creates there get that uid
(:mod:`convo.runtime.workspace`). ``exec`` runs one program in a short-lived sandbox of
its own over the same workspace (the git routes use it).
Resource limits: see :mod:`convo.runtime.limits`.

The launcher and bwrap run with a fixed minimal environment; the conversation's secrets
reach only the shell inside, which exports them after it started
(:func:`convo.runtime.process.export_script`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from convo.errors import SandboxError, SandboxUnavailable
from convo.runtime.base import CommandResult, ExecResult, SandboxSpec
from convo.runtime.limits import ResourceLimits, SandboxCgroup
from convo.runtime.network import IsolatedNetwork, NetworkMode, isolated_network
from convo.runtime.oneshot import run_once
from convo.runtime.process import DEFAULT_PATH, clean_env, export_script
from convo.runtime.quota import WorkspaceGuard
from convo.runtime.shell import BashSession
from convo.runtime.spawned import ENV_READER, SandboxProcess, SpawnedSet, spawn_process
from convo.runtime.workspace import Workspace

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

# Run by the server's own Python with -I -S (no site, no environment) and a fixed minimal
# environment; its arguments: cgroup.procs files, uid, workspace, cover, then slirp4netns,
# its range, the refused networks and the DNS address (empty: no isolated network), then
# the bwrap command line; only what it needs is imported (it starts with every sandbox). It joins
# the cgroups; for an isolated network (root only) it makes a new network namespace, refuses
# the configured networks there with prohibit routes, turns IPv6 off for new interfaces and
# attaches slirp4netns (forked before, so it stays in the host's namespace; it dies with its
# parent). Then - when it is to drop to an unprivileged uid, which may not be allowed to walk
# the path to the workspace (e.g. under /root) - it enters a private mount namespace, covers
# COVER (a directory that does not contain the workspace) with a tmpfs, binds the workspace
# at COVER/convo-workspace for bwrap to bind at /workspace, and writes the sandbox's
# resolv.conf there. Then it drops to the uid and execs bwrap (an absolute path).
_COVERS = ("/tmp", "/mnt", "/srv", "/media", "/opt")
LAUNCHER = """
import ctypes, os, sys
procs, uid, workspace, cover = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
slirp4netns, cidr, routes, dns = sys.argv[5:9]
libc = ctypes.CDLL(None, use_errno=True)
def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)
def slirp(parent, go, ready):
    try:
        check(libc.prctl(1, 9, 0, 0, 0), "prctl")  # SIGKILL when the launcher/bwrap dies
        if os.getppid() == parent and os.read(go, 1) == b"1":
            os.set_inheritable(ready, True)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(slirp4netns, [slirp4netns, "--configure", "--mtu=65520",
                "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
                "--cidr=" + cidr, "--ready-fd=%d" % ready, str(parent), "tap0"])
    finally:
        os._exit(1)
def prohibit(networks):  # RTM_NEWROUTE (type prohibit, main table) over rtnetlink
    import _socket, struct
    sock = _socket.socket(16, 3, 0)  # AF_NETLINK, SOCK_RAW, NETLINK_ROUTE
    try:
        for seq, network in enumerate(networks.split(","), 1):
            address, length = network.split("/")
            body = struct.pack("=8BI", 2, int(length), 0, 0, 254, 3, 0, 8, 0)
            body += struct.pack("=HH4B", 8, 1, *map(int, address.split(".")))  # RTA_DST
            sock.send(struct.pack("=IHHII", 16 + len(body), 24, 0x605, seq, 0) + body)
            error = struct.unpack_from("=i", sock.recv(4096), 16)[0]
            if error:
                raise OSError(-error, "prohibit " + network)
    finally:
        sock.close()
def isolate():
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    if os.fork() == 0:
        os.close(go_w)
        os.close(ready_r)
        slirp(parent, go_r, ready_w)
    os.close(go_r)
    os.close(ready_w)
    check(libc.unshare(0x40000000), "unshare(CLONE_NEWNET)")
    try:
        with open("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w") as handle:
            handle.write("1")
    except FileNotFoundError:
        pass  # no IPv6 in this kernel
    prohibit(routes)
    os.write(go_w, b"1")
    os.close(go_w)
    if os.read(ready_r, 1) != b"1":  # EOF: slirp4netns exited
        raise OSError(0, "slirp4netns did not start")
    os.close(ready_r)
try:
    for path in filter(None, procs.split(":")):
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))
    if slirp4netns:
        isolate()
    if uid >= 0:
        stage = cover + "/convo-workspace"
        check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
        check(libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None), "make / private")
        check(libc.mount(b"tmpfs", cover.encode(), b"tmpfs", 0, b"mode=0755,size=64k"), cover)
        os.mkdir(stage, 0o755)
        check(libc.mount(workspace.encode(), stage.encode(), None, 0x1000, None), "bind")
        if slirp4netns:
            with open(cover + "/convo-resolv.conf", "w") as handle:
                handle.write("nameserver %s\\n" % dns)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.execv(sys.argv[9], sys.argv[9:])
except OSError as exc:
    print(f"convo sandbox launcher: {exc}", flush=True)
    sys.exit(97)
"""


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


class BwrapSandbox:
    """One conversation's workspace and shell, inside bubblewrap."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        bwrap: str = "bwrap",
        network: NetworkMode = "isolated",
        limits: ResourceLimits | None = None,
        uid: int | None = None,
        kill_grace_seconds: float = 1.0,
    ) -> None:
        self._spec = spec
        self._guard = WorkspaceGuard(spec)
        self._bwrap = bwrap
        self._network = network
        self._limits = self._guard.limit_files(limits or ResourceLimits())
        self._uid = sandbox_uid(uid)
        self._grace = kill_grace_seconds
        self._root = spec.workspace.expanduser().absolute()
        self._session: BashSession | None = None
        self._cgroup: SandboxCgroup | None = None
        self._spawned = SpawnedSet()
        self._closed = False

    @property
    def workspace_path(self) -> str:
        return str(MOUNT)

    @property
    def shell_pid(self) -> int | None:
        """The pid (on the host) of the launcher/bwrap process leading the shell's group."""
        return self._session.pid if self._session else None

    @property
    def enforced_limits(self) -> list[str]:
        """The per-sandbox cgroup limits this machine let us set (empty: rlimits only)."""
        return list(self._cgroup.enforced) if self._cgroup else []

    async def start(self) -> None:
        if self._closed:
            raise SandboxError("The sandbox is closed")
        if self._session is not None:
            return
        try:
            argv = await asyncio.to_thread(self._prepare)
            await self._guard.measure(self._root)
            session = BashSession(
                argv,
                cwd=Path("/"),
                env=clean_env(str(MOUNT)),
                start_dir=str(MOUNT),
                default_timeout=self._spec.command_timeout_seconds,
                max_output_chars=self._spec.max_output_chars,
                kill_grace_seconds=self._grace,
                init_script=self._limits.ulimit_script() + export_script(self._spec.env),
                wrapped=True,
            )
            await session.start()
        except SandboxError as exc:
            await self.close()
            raise SandboxUnavailable(f"bubblewrap sandbox failed to start: {exc}") from exc
        except OSError as exc:
            await self.close()
            raise SandboxUnavailable(f"bubblewrap sandbox failed to start: {exc}") from exc
        self._session = session
        self._guard.start(self._root, session)

    def _prepare(self) -> list[str]:
        """Blocking: workspace, ownership, cgroup; returns the launcher command line."""
        self._root.mkdir(parents=True, exist_ok=True)
        self._root = self._root.resolve(strict=True)
        if self._uid >= 0:
            self.workspace.chown_tree(self._uid, self._uid)
        label = "convo-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self._spec.conversation_id)[:64]
        self._cgroup = SandboxCgroup.create(label, self._limits)
        isolated = None
        if self._network == "isolated" and self._uid >= 0:
            isolated = isolated_network()
        argv = launch_argv(
            self._bwrap,
            workspace=self._root,
            network=self._network,
            tmp_size_bytes=self._limits.tmp_size_bytes,
            uid=self._uid,
            cgroup_procs=self._cgroup.procs_files,
            isolated=isolated,
        )
        return [*argv, "bash", "--noprofile", "--norc"]

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the Sandbox protocol's signature
        is_input: bool = False,
    ) -> CommandResult:
        if self._session is None:
            raise SandboxError("The sandbox has not been started")
        self._guard.check()
        return await self._session.run(command, timeout=timeout, is_input=is_input)

    @property
    def workspace(self) -> Workspace:
        owner = (self._uid, self._uid) if self._uid >= 0 else None
        return Workspace(self._root, agent_root=str(MOUNT), owner=owner)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the Sandbox protocol's signature
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ExecResult:
        """A short-lived sandbox of its own over the same workspace: same uid, mounts,
        rlimits and cgroup limits (a cgroup of its own), no network; the workspace must
        exist."""
        where = str(MOUNT.joinpath(*self.workspace.parts(cwd)))
        label = "convo-exec-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self._spec.conversation_id)[:64]
        cgroup = await asyncio.to_thread(SandboxCgroup.create, label, self._limits)
        try:
            try:
                root = await asyncio.to_thread(self._root.resolve, True)
                outer = launch_argv(
                    self._bwrap,
                    workspace=root,
                    network="none",
                    tmp_size_bytes=self._limits.tmp_size_bytes,
                    uid=self._uid,
                    cgroup_procs=cgroup.procs_files,
                )
            except OSError as exc:
                raise SandboxError(f"The workspace is not there: {exc}") from exc
            outer[outer.index("--chdir") + 1] = where
            limited = self._limits.ulimit_script() + 'exec "$@"'
            shell = ["/bin/bash", "--noprofile", "--norc", "-c", limited, "bash"]
            return await run_once(
                [*outer, *shell, *argv],
                env=clean_env(str(MOUNT), env or {}),
                cwd=Path("/"),
                timeout=timeout,
                max_output_bytes=max_output_bytes,
            )
        finally:
            await asyncio.to_thread(cgroup.remove)

    async def spawn(
        self, argv: Sequence[str], *, cwd: str = "", env: Mapping[str, str] | None = None
    ) -> SandboxProcess:
        """A sandbox of its own over the same workspace, like ``exec``'s, but long-lived and
        with the conversation's network mode: same uid, mounts, rlimits and cgroup limits (a
        cgroup of its own, removed when the program is closed); the workspace must exist."""
        if self._closed:
            raise SandboxError("The sandbox is closed")
        where = str(MOUNT.joinpath(*self.workspace.parts(cwd)))
        label = "convo-mcp-" + re.sub(r"[^A-Za-z0-9_.-]", "_", self._spec.conversation_id)[:64]
        cgroup = await asyncio.to_thread(SandboxCgroup.create, label, self._limits)

        async def remove_cgroup() -> None:
            await asyncio.to_thread(cgroup.remove)

        try:
            outer = await asyncio.to_thread(self._spawn_argv, cgroup.procs_files)
        except (OSError, SandboxError) as exc:
            await remove_cgroup()
            raise SandboxError(f"Cannot start a program in the sandbox: {exc}") from exc
        outer[outer.index("--chdir") + 1] = where
        script = self._limits.ulimit_script() + ENV_READER
        shell = ["/bin/bash", "--noprofile", "--norc", "-c", script, "bash"]
        process = await spawn_process(
            [*outer, *shell, *argv],
            env=clean_env(str(MOUNT)),
            cwd=Path("/"),
            variables=env or {},
            on_close=remove_cgroup,
        )
        return self._spawned.add(process)

    def _spawn_argv(self, cgroup_procs: list[str]) -> list[str]:
        """Blocking: the launcher command line of a spawned program."""
        root = self._root.resolve(strict=True)
        isolated = None
        if self._network == "isolated" and self._uid >= 0:
            isolated = isolated_network()
        return launch_argv(
            self._bwrap,
            workspace=root,
            network=self._network,
            tmp_size_bytes=self._limits.tmp_size_bytes,
            uid=self._uid,
            cgroup_procs=cgroup_procs,
            isolated=isolated,
        )

    async def wait_failed(self) -> SandboxError:
        return await self._guard.wait_failed()

    async def close(self) -> None:
        self._closed = True
        await self._spawned.close()
        await self._guard.close()
        if self._session is not None:
            await self._session.close()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)


class BwrapSandboxFactory:
    """Creates bubblewrap sandboxes (runtime ``sandbox``)."""

    name = "sandbox"

    def __init__(
        self,
        *,
        bwrap: str = "bwrap",
        network: NetworkMode = "isolated",
        limits: ResourceLimits | None = None,
        uid: int | None = None,
        kill_grace_seconds: float = 1.0,
        disk_limit_bytes: int | None = None,
    ) -> None:
        self._bwrap = bwrap
        self.disk_limit_bytes = disk_limit_bytes  # for specs that set none
        self.network = network
        self.limits = limits or ResourceLimits()
        self._uid = uid
        self._grace = kill_grace_seconds

    def create(self, spec: SandboxSpec) -> BwrapSandbox:
        if spec.disk_limit_bytes is None:
            spec = dataclasses.replace(spec, disk_limit_bytes=self.disk_limit_bytes)
        return BwrapSandbox(
            spec,
            bwrap=self._bwrap,
            network=self.network,
            limits=self.limits,
            uid=self._uid,
            kill_grace_seconds=self._grace,
        )
