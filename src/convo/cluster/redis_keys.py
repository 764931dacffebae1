"""Every Redis name convo uses, in one place.

Redis carries only what can be lost: live events, requests between nodes and wake-ups go over
pub/sub channels; convo stores no key in Redis. The durable state (events, conversations,
leases) is in PostgreSQL.
"""

from __future__ import annotations

PREFIX = "convo:"

# pub/sub channels
EVENTS_CHANNEL = PREFIX + "events:{conversation_id}"  # a conversation's live events
NODE_CHANNEL = PREFIX + "node:{node_id}"  # requests to a node, and replies to its requests
WAKEUP_CHANNEL = PREFIX + "wakeup"  # hints every node may act on


def events_channel(conversation_id: str) -> str:
    return EVENTS_CHANNEL.format(conversation_id=conversation_id)


def node_channel(node_id: str) -> str:
    return NODE_CHANNEL.format(node_id=node_id)
