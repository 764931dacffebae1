"""Which node runs which conversation: this node's leases, kept alive (cluster mode).

A node runs a conversation's loop only under a lease it acquired in the database
(``LeaseStore``): the acquire gives a fencing token that every write of the loop carries,
and that storage refuses once another node has acquired the lease since (``LeaseLost``).

The lease keeper, one named task per node, renews all of this node's leases in one
statement every third of ``lease_seconds``. A lease that renewal does not return (another
node took it, or it was revoked) is lost: its loop is stopped at once, and stops without
writing (``on_lost``). A node that could not renew for a whole lease time (it was frozen, or
cut off from the database) counts every lease it holds as lost the moment it notices, before
trying anything else: another node may have taken them over meanwhile.

In single-server mode (no Redis) there are no leases: ``SoleOwnership`` acquires everything,
gives no token (writes are not fenced) and costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from convo.aio import cancel_and_await
from convo.domain.conversation import ConversationMetadata
from convo.errors import StorageError
from convo.storage.base import Acquisition, Lease, LeaseStore

logger = logging.getLogger(__name__)

OnLost = Callable[[str], None]  # stops the loop at once; never waits


class Ownership(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def clustered(self) -> bool:
        """Other nodes may run conversations of this database."""

    async def acquire(self, conversation_id: str, user_limit: int | None) -> Acquisition: ...

    def token(self, conversation_id: str) -> int | None:
        """The token this node's loop of it writes with (None: unfenced)."""

    async def release(self, conversation_id: str) -> None:
        """The loop ended: free its lease for any node."""

    def forget(self, conversation_id: str) -> None:
        """The lease is lost: keep no token, release nothing."""

    async def owner(self, conversation_id: str) -> str | None:
        """The node holding a live lease on it (None: nobody runs it)."""

    def owned_elsewhere(self, conversation_id: str) -> bool:
        """As last seen (``refresh``): another node runs it."""

    async def refresh(self, conversation_ids: list[str]) -> None:
        """Look up which of these conversations other nodes run now."""

    async def orphaned(self) -> list[ConversationMetadata] | None:
        """Conversations that should run and no node runs; None: every one that should run
        (a single server runs them all)."""

    async def revoke(self, conversation_id: str) -> int | None:
        """Take the lease from whoever holds it (fencing them); the new token."""

    def start(self, on_lost: OnLost) -> None: ...

    async def aclose(self) -> None: ...


class SoleOwnership:
    """One server per database: it owns every conversation, and nothing is fenced."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def clustered(self) -> bool:
        return False

    async def acquire(self, conversation_id: str, user_limit: int | None) -> Acquisition:  # noqa: ARG002
        return Acquisition(Lease(conversation_id, self._node_id, 0))

    def token(self, conversation_id: str) -> int | None:  # noqa: ARG002
        return None

    async def release(self, conversation_id: str) -> None:  # noqa: ARG002
        return None

    def forget(self, conversation_id: str) -> None:  # noqa: ARG002
        return None

    async def owner(self, conversation_id: str) -> str | None:  # noqa: ARG002
        return None

    def owned_elsewhere(self, conversation_id: str) -> bool:  # noqa: ARG002
        return False

    async def refresh(self, conversation_ids: list[str]) -> None:  # noqa: ARG002
        return None

    async def orphaned(self) -> list[ConversationMetadata] | None:
        return None

    async def revoke(self, conversation_id: str) -> int | None:  # noqa: ARG002
        return None

    def start(self, on_lost: OnLost) -> None:  # noqa: ARG002
        return None

    async def aclose(self) -> None:
        return None


class LeaseOwnership:
    """This node's leases in a cluster, renewed by the lease keeper."""

    def __init__(self, leases: LeaseStore, node_id: str, lease_seconds: float) -> None:
        self._leases = leases
        self._node_id = node_id
        self._ttl = lease_seconds
        self._tokens: dict[str, int] = {}  # conversation id -> token of our lease
        self._elsewhere: dict[str, str] = {}  # conversation id -> owner, as last seen
        self._renewed_at = time.monotonic()  # when the last renewal was sent (and succeeded)
        self._task: asyncio.Task[None] | None = None
        self._on_lost: OnLost | None = None
        self._strays: dict[str, int] = {}  # held in the database, not here, last round

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def clustered(self) -> bool:
        return True

    async def acquire(self, conversation_id: str, user_limit: int | None) -> Acquisition:
        sent = time.monotonic()
        got = await self._leases.acquire(
            conversation_id, self._node_id, self._ttl, user_limit=user_limit
        )
        if got.lease is not None:
            if not self._tokens:  # a lease counts from when its acquire was sent
                self._renewed_at = sent
            self._tokens[conversation_id] = got.lease.token
            self._elsewhere.pop(conversation_id, None)
        elif got.holder is not None:
            self._elsewhere[conversation_id] = got.holder
        return got

    def token(self, conversation_id: str) -> int | None:
        return self._tokens.get(conversation_id)

    async def release(self, conversation_id: str) -> None:
        token = self._tokens.pop(conversation_id, None)
        if token is not None:
            await self._leases.release(conversation_id, token)

    def forget(self, conversation_id: str) -> None:
        self._tokens.pop(conversation_id, None)

    async def owner(self, conversation_id: str) -> str | None:
        owner = await self._leases.holder(conversation_id)
        self._note(conversation_id, owner)
        return owner

    def owned_elsewhere(self, conversation_id: str) -> bool:
        return conversation_id in self._elsewhere

    async def refresh(self, conversation_ids: list[str]) -> None:
        owners = await self._leases.live_owners(conversation_ids)
        for conversation_id in conversation_ids:
            self._note(conversation_id, owners.get(conversation_id))

    def _note(self, conversation_id: str, owner: str | None) -> None:
        if owner is None or owner == self._node_id:
            self._elsewhere.pop(conversation_id, None)
        else:
            self._elsewhere[conversation_id] = owner

    async def orphaned(self) -> list[ConversationMetadata] | None:
        return await self._leases.orphaned()

    async def revoke(self, conversation_id: str) -> int | None:
        self._elsewhere.pop(conversation_id, None)
        return await self._leases.revoke(conversation_id)

    # --- the lease keeper ----------------------------------------------------------------
    def start(self, on_lost: OnLost) -> None:
        self._on_lost = on_lost
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name="conversations:lease-keeper")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel_and_await(task)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.renew()
            except StorageError as exc:
                logger.warning("could not renew this server's leases: %s", exc)
            except Exception:
                logger.exception("the lease keeper failed a round")

    async def renew(self) -> list[str]:
        """One round: the conversations whose lease is lost (their loops are stopped)."""
        if time.monotonic() - self._renewed_at > self._ttl and self._tokens:
            # frozen or cut off for a whole lease time: others may run them now
            logger.warning("leases not renewed for %.1f s: stopping their loops", self._ttl)
            return await self._lose(list(self._tokens))
        sent = time.monotonic()
        held = await self._leases.renew(self._node_id, self._ttl)
        self._renewed_at = sent
        lost = [cid for cid, token in self._tokens.items() if held.get(cid) != token]
        await self._release_strays(held)
        return await self._lose(lost)

    async def _release_strays(self, held: dict[str, int]) -> None:
        """Free leases the database says are ours and no loop here holds, two rounds in a
        row (one round could be an acquire whose answer is still on its way)."""
        strays = {cid: t for cid, t in held.items() if self._tokens.get(cid) != t}
        for conversation_id, token in strays.items():
            if self._strays.get(conversation_id) == token:
                await self._leases.release(conversation_id, token)
        self._strays = strays

    async def _lose(self, conversation_ids: list[str]) -> list[str]:
        for conversation_id in conversation_ids:
            token = self._tokens.pop(conversation_id, None)
            logger.warning("lost the lease of %s: stopping its loop", conversation_id)
            if self._on_lost is not None:
                self._on_lost(conversation_id)
            if token is not None:  # free at once if still ours (a no-op if taken)
                with contextlib.suppress(StorageError):
                    await self._leases.release(conversation_id, token)
        return conversation_ids
