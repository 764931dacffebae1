"""The sandbox launcher: the small program that starts every bubblewrap sandbox.

It runs by the server's own Python with ``-I -S`` (no site, no environment) and a fixed
minimal environment, before bwrap; only what it needs is imported (it starts with every
sandbox). Its arguments: cgroup.procs files, uid, workspace, cover, then slirp4netns, its
range, the refused networks and the DNS address (empty: no isolated network), then the
bwrap command line (:func:`convo.runtime.bwrap_argv.launch_argv` builds them).

What it does, in order:

* joins the sandbox's cgroups;
* for an isolated network (root only; see :mod:`convo.runtime.network`) makes a new network
  namespace, refuses the configured networks there with prohibit routes, turns IPv6 off for
  new interfaces and attaches slirp4netns (forked before, so it stays in the host's
  namespace; it dies with its parent);
* when it is to drop to an unprivileged uid, which may not be allowed to walk the path to
  the workspace (e.g. under /root): enters a private mount namespace, covers COVER (a
  directory that does not contain the workspace) with a tmpfs, binds the workspace at
  COVER/convo-workspace for bwrap to bind at /workspace, and writes the sandbox's
  resolv.conf there;
* drops to the uid and execs bwrap (an absolute path).

On an OSError it prints ``convo sandbox launcher: ...`` and exits 97.
"""

from __future__ import annotations

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
