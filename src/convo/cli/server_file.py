"""``<data dir>/server.json``: which convo server runs on a data dir, so that the terminal
client finds it (and a second server on the same data dir is refused).

The file holds the server's URL and pid, never a key. It is written once the server's socket
is bound and removed as it stops; a file left by a killed server is recognised as stale
because its pid is gone or its URL does not answer ``/alive``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    url: str
    pid: int


def _path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def write(data_dir: Path, record: ServerRecord) -> None:
    path = _path(data_dir)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"url": record.url, "pid": record.pid}))
    temporary.replace(path)


def remove(data_dir: Path, record: ServerRecord) -> None:
    """Remove the file if it still names this server (a newer one may have replaced it)."""
    if read(data_dir) == record:
        with contextlib.suppress(OSError):
            _path(data_dir).unlink()


def read(data_dir: Path) -> ServerRecord | None:
    try:
        data = json.loads(_path(data_dir).read_text())
        return ServerRecord(url=str(data["url"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def running_server(data_dir: Path) -> ServerRecord | None:
    """The server recorded for this data dir if its process lives and it answers /alive."""
    record = read(data_dir)
    if record is None or not _pid_alive(record.pid):
        return None
    import httpx  # only the client commands look for a running server

    try:
        response = httpx.get(f"{record.url}/alive", timeout=2.0)
    except httpx.HTTPError:
        return None
    return record if response.status_code == 200 else None
