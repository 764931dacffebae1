"""Conversation leases in SQL (cluster mode): who runs a conversation, until when, under
which fencing token.

The lease lives in the conversation's own row (``lease_owner``, ``lease_token``,
``lease_expires_at``), so a loop's fenced write (``sql.py``: the event counter's UPDATE, a
metadata UPDATE, both ``WHERE lease_token = :token``) and a takeover's UPDATE lock the same
row: PostgreSQL serialises them, and a write carrying a superseded token matches no row.

Expiries are seconds since the epoch by the database's clock, so nodes' clocks never matter.
The per-user limit is checked in the acquire's own UPDATE (a subquery counting the user's
other live leases); on PostgreSQL a transaction-scoped advisory lock per user comes first, so
that two acquires of one user never both count before either has written.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from convo.domain.conversation import ConversationMetadata
from convo.errors import RecordNotFound
from convo.storage import codec
from convo.storage.base import Acquisition, Lease
from convo.storage.schema import conversations
from convo.storage.sql_common import WriteGate, completes_when_cancelled, reader, translate_errors

# the advisory lock class of per-user acquires (the server claim uses the one-key form)
_USER_LOCK_CLASS = 0x636F6E76  # "conv"

_c = conversations.c


def _db_now(engine: AsyncEngine) -> ColumnElement[float]:
    """Now, in seconds since the epoch, by the database's clock."""
    if engine.dialect.name == "postgresql":
        return literal_column("extract(epoch from clock_timestamp())", Float)
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)


class SqlLeaseStore:
    def __init__(self, engine: AsyncEngine, gate: WriteGate) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._gate = gate
        self._postgres = engine.dialect.name == "postgresql"

    def _live(self) -> ColumnElement[bool]:
        return and_(_c.lease_owner.is_not(None), _c.lease_expires_at > _db_now(self._engine))

    @completes_when_cancelled
    async def acquire(
        self,
        conversation_id: str,
        owner: str,
        ttl_seconds: float,
        *,
        user_limit: int | None = None,
    ) -> Acquisition:
        now = _db_now(self._engine)
        takeable = or_(
            _c.lease_owner.is_(None), _c.lease_expires_at <= now, _c.lease_owner == owner
        )
        stmt = update(conversations).where(_c.conversation_id == conversation_id, takeable)
        if user_limit is not None:
            others = conversations.alias("others")
            live_others = (
                select(func.count())
                .where(
                    others.c.user_id == _c.user_id,
                    others.c.conversation_id != conversation_id,
                    others.c.lease_owner.is_not(None),
                    others.c.lease_expires_at > now,
                )
                .scalar_subquery()
            )
            stmt = stmt.where(live_others < user_limit)
        stmt = stmt.values(
            lease_owner=owner,
            lease_token=_c.lease_token + 1,
            lease_expires_at=now + ttl_seconds,
        ).returning(_c.lease_token)
        with translate_errors(f"Acquiring the lease of conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                if user_limit is not None and self._postgres:
                    await self._lock_user(conn, conversation_id)
                token = (await conn.execute(stmt)).scalar_one_or_none()
                if token is not None:
                    return Acquisition(Lease(conversation_id, owner, int(token)))
                return await self._why_not(conn, conversation_id, owner)

    @staticmethod
    async def _lock_user(conn: AsyncConnection, conversation_id: str) -> None:
        await conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(:class, hashtext(user_id)) FROM conversations "
                "WHERE conversation_id = :id"
            ),
            {"class": _USER_LOCK_CLASS, "id": conversation_id},
        )

    async def _why_not(
        self, conn: AsyncConnection, conversation_id: str, owner: str
    ) -> Acquisition:
        row = (
            await conn.execute(
                select(_c.user_id, _c.lease_owner, self._live().label("live")).where(
                    _c.conversation_id == conversation_id
                )
            )
        ).first()
        if row is None:
            raise RecordNotFound(f"Conversation {conversation_id} not found")
        if row.live and row.lease_owner != owner:
            return Acquisition(None, holder=row.lease_owner)
        running = (
            await conn.execute(
                select(_c.conversation_id)
                .where(
                    _c.user_id == row.user_id,
                    _c.conversation_id != conversation_id,
                    self._live(),
                )
                .order_by(_c.last_updated_at, _c.conversation_id)
            )
        ).scalars()
        return Acquisition(None, over_limit=tuple(running))

    @completes_when_cancelled
    async def renew(self, owner: str, ttl_seconds: float) -> dict[str, int]:
        stmt = (
            update(conversations)
            .where(_c.lease_owner == owner)
            .values(lease_expires_at=_db_now(self._engine) + ttl_seconds)
            .returning(_c.conversation_id, _c.lease_token)
        )
        with translate_errors("Renewing leases"):
            async with self._gate.begin() as conn:
                rows = (await conn.execute(stmt)).all()
        return {row.conversation_id: int(row.lease_token) for row in rows}

    @completes_when_cancelled
    async def release(self, conversation_id: str, token: int) -> None:
        stmt = (
            update(conversations)
            .where(_c.conversation_id == conversation_id, _c.lease_token == token)
            .values(lease_owner=None, lease_expires_at=None)
        )
        with translate_errors(f"Releasing the lease of conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                await conn.execute(stmt)

    @completes_when_cancelled
    async def revoke(self, conversation_id: str) -> int:
        stmt = (
            update(conversations)
            .where(_c.conversation_id == conversation_id)
            .values(lease_owner=None, lease_expires_at=None, lease_token=_c.lease_token + 1)
            .returning(_c.lease_token)
        )
        with translate_errors(f"Revoking the lease of conversation {conversation_id}"):
            async with self._gate.begin() as conn:
                token = (await conn.execute(stmt)).scalar_one_or_none()
        if token is None:
            raise RecordNotFound(f"Conversation {conversation_id} not found")
        return int(token)

    async def holder(self, conversation_id: str) -> str | None:
        return (await self.live_owners([conversation_id])).get(conversation_id)

    @completes_when_cancelled
    async def live_owners(self, conversation_ids: list[str]) -> dict[str, str]:
        if not conversation_ids:
            return {}
        stmt = select(_c.conversation_id, _c.lease_owner).where(
            _c.conversation_id.in_(conversation_ids), self._live()
        )
        with translate_errors("Reading conversation leases"):
            async with self._reader.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return {row.conversation_id: row.lease_owner for row in rows}

    @completes_when_cancelled
    async def orphaned(self) -> list[ConversationMetadata]:
        now = _db_now(self._engine)
        stmt = (
            select(conversations)
            .where(
                _c.desired_running.is_(True),
                or_(_c.lease_owner.is_(None), _c.lease_expires_at <= now),
            )
            .order_by(_c.last_updated_at, _c.conversation_id)
        )
        with translate_errors("Listing conversations without a live lease"):
            async with self._reader.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return [codec.metadata_from_row(row) for row in rows]
