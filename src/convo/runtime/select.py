"""Choosing the sandbox implementation: ``auto``, ``sandbox`` (bubblewrap) or ``process``.

``auto`` uses bubblewrap where a probe sandbox starts on this machine and falls back to
the unconfined process sandbox with a logged warning. ``sandbox`` never falls back: if
bubblewrap does not work, every conversation's ``start()`` raises SandboxUnavailable.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from convo.errors import SandboxUnavailable
from convo.runtime.base import SandboxFactory
from convo.runtime.bwrap import BwrapSandboxFactory
from convo.runtime.bwrap_argv import launch_argv, sandbox_uid
from convo.runtime.limits import ResourceLimits
from convo.runtime.network import NetworkMode
from convo.runtime.process import ProcessSandboxFactory, clean_env

logger = logging.getLogger(__name__)

_PROBE_SECONDS = 10.0


def bwrap_available(bwrap: str = "bwrap", *, uid: int | None = None) -> bool:
    """Whether a bubblewrap sandbox, set up as BwrapSandbox sets it up, runs ``true`` here.

    Blocking (one short subprocess); meant for startup, before serving requests.
    """
    run_as = sandbox_uid(uid)
    try:
        with tempfile.TemporaryDirectory(prefix="convo-probe-") as workspace:
            if run_as >= 0:
                os.chown(workspace, run_as, run_as)
            argv = launch_argv(
                bwrap,
                workspace=Path(workspace),
                network="none",
                tmp_size_bytes=None,
                uid=run_as,
                cgroup_procs=[],
            )
            result = subprocess.run(
                [*argv, "true"],
                env=clean_env("/workspace"),
                cwd="/",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_SECONDS,
                check=False,
            )
    except (OSError, SandboxUnavailable, subprocess.TimeoutExpired) as exc:
        logger.info("bubblewrap is not usable here: %s", exc)
        return False
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        logger.info("bubblewrap is not usable here: %s", detail or result.returncode)
        return False
    return True


def choose_sandbox_factory(
    mode: Literal["auto", "sandbox", "process"],
    *,
    bwrap: str = "bwrap",
    network: NetworkMode = "isolated",
    limits: ResourceLimits | None = None,
    uid: int | None = None,
    disk_limit_bytes: int | None = None,
) -> SandboxFactory:
    """The factory for ``mode`` (``Settings.runtime``); ``disk_limit_bytes`` is each
    workspace's quota (see :mod:`convo.runtime.quota`)."""
    unconfined = ProcessSandboxFactory(disk_limit_bytes=disk_limit_bytes)
    if mode == "process":
        return unconfined
    sandboxed = BwrapSandboxFactory(
        bwrap=bwrap, network=network, limits=limits, uid=uid, disk_limit_bytes=disk_limit_bytes
    )
    if mode == "sandbox":
        return sandboxed  # start() raises SandboxUnavailable where bubblewrap cannot run
    if bwrap_available(bwrap, uid=uid):
        return sandboxed
    logger.warning(
        "bubblewrap is not available; agent commands will run UNCONFINED on this host "
        "(runtime=process). Install bubblewrap, or set CONVO_RUNTIME=process to silence this."
    )
    return unconfined
