"""A node's id: how one server process names itself to the others in a cluster.

Made once per process at the entry point (``create_app``): the host name, the process id and
a random suffix, so that a restarted process (which may get the same pid) is a new node and
never mistakes its predecessor's leases for its own.
"""

from __future__ import annotations

import os
import secrets
import socket


def new_node_id() -> str:
    host = socket.gethostname().split(".")[0][:64] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"
