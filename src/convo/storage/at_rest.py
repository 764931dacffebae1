"""What protects stored data on disk: a private data dir and database file, and sealed secrets.

Custom secrets, provider tokens, a user's LLM API key and MCP servers are stored sealed with Fernet
(``cryptography``: AES-128-CBC with an HMAC-SHA256, a fresh IV per value) under a key kept
outside the database:

- ``CONVO_SECRETS_KEY`` (a Fernet key) when set; several servers sharing one PostgreSQL
  database must all be given the same one;
- otherwise ``secrets.key`` in the data dir, created on first start with mode 0600.

When both exist the environment's key seals and the file's key still opens what it sealed, so
an operator can move from the file to the variable. A row stored in plain text by an older
version still loads, and is sealed at the next start (``Sealer.seal`` of what it reads).

The data dir is made 0700 and the SQLite database file 0600 (SQLite gives its WAL and shared
memory files the database's mode): only the server's user reads them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convo.errors import StorageError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secrets.key"
_SEALED = "fernet"  # the one key of a sealed document: {"fernet": "<token>"}
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class Sealer:
    """Seals and opens JSON documents and single strings."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a Sealer needs at least one key")
        for key in keys:
            _check_key(key)
        self._keys = keys
        self._fernet: MultiFernet | None = None

    def _cipher(self) -> MultiFernet:
        """Built at the first seal or open: most starts need no secret, and ``cryptography``
        costs a few megabytes and milliseconds to import."""
        if self._fernet is None:
            from cryptography.fernet import Fernet, MultiFernet

            self._fernet = MultiFernet([Fernet(key) for key in self._keys])
        return self._fernet

    def seal(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return self.seal_text(json.dumps(data, separators=(",", ":")))

    def open(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The document ``seal`` sealed; a plain (older, unsealed) document as it is."""
        if not is_sealed(data):
            return dict(data)
        opened: dict[str, Any] = json.loads(self.open_text(data))
        return opened

    def seal_text(self, text: str) -> dict[str, Any]:
        return {_SEALED: self._cipher().encrypt(text.encode()).decode("ascii")}

    def open_text(self, value: Mapping[str, Any] | str) -> str:
        """The string ``seal_text`` sealed; a plain string as it is."""
        if isinstance(value, str):
            return value
        from cryptography.fernet import InvalidToken

        try:
            return self._cipher().decrypt(str(value[_SEALED]).encode("ascii")).decode()
        except (InvalidToken, KeyError, UnicodeError) as exc:
            raise StorageError(
                "Stored secrets cannot be opened with this key: the data dir's secrets.key or "
                "CONVO_SECRETS_KEY is not the one they were sealed with"
            ) from exc


def is_sealed(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {_SEALED}


def new_key() -> str:
    """A fresh key for CONVO_SECRETS_KEY."""
    return _generate_key().decode("ascii")


def _generate_key() -> bytes:
    """A Fernet key (as ``Fernet.generate_key`` makes it): 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32))


def _check_key(key: bytes) -> None:
    """Refuse what Fernet would refuse as a key, without importing it."""
    try:
        valid = len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise StorageError(
            "Invalid secrets key: Fernet key must be 32 url-safe base64-encoded bytes."
        )


def load_sealer(data_dir: Path, env_key: str | None) -> Sealer:
    """The sealer of this server: the environment's key and/or the data dir's key file
    (created, mode 0600, when there is no environment key and no file yet)."""
    key_file = data_dir / KEY_FILE_NAME
    keys: list[bytes] = []
    if env_key:
        keys.append(env_key.strip().encode("ascii", "replace"))
    if key_file.exists() or not env_key:
        keys.append(_read_or_create_key(key_file))
    return Sealer(keys)


def _read_or_create_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:
        make_private(path, PRIVATE_FILE_MODE)
        try:
            return path.read_bytes().strip()
        except OSError as exc:
            raise StorageError(f"Cannot read the secrets key file {path}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"Cannot create the secrets key file {path}: {exc}") from exc
    key = _generate_key()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    logger.info(
        "created the secrets key %s (keep it with the database: it opens its secrets)", path
    )
    return key


def make_private(path: Path, mode: int) -> None:
    """Narrow ``path``'s mode to ``mode`` if it allows more (never widens it)."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if current & ~mode:
            os.chmod(path, current & mode, follow_symlinks=False)
            logger.info("narrowed the mode of %s from %o to %o", path, current, current & mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"Cannot make {path} private: {exc}") from exc


def prepare_data_dir(path: Path) -> None:
    """Create the data dir (0700), or narrow an existing one to 0700."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"Cannot create the data dir {path}: {exc}") from exc
    make_private(path, PRIVATE_DIR_MODE)


def prepare_database_file(path: Path) -> None:
    """Create the SQLite database file (0600) before SQLite does, or narrow it to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE_MODE))
    except OSError as exc:
        raise StorageError(f"Cannot create the database file {path}: {exc}") from exc
    for suffix in ("", "-wal", "-shm", "-journal"):
        make_private(path.with_name(path.name + suffix), PRIVATE_FILE_MODE)
