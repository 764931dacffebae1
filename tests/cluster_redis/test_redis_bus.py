"""Live events across two servers over a real Redis: order, bounds, and what a listener
sees when Redis breaks (the stream resumes from the store without a gap or a duplicate)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from convo.cluster.base import Payload, Subscription, SubscriptionClosed
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import EventSource, message_action
from convo.services.event_log import EventLog, status_update
from convo.services.streams import EventFeed, FeedEnd, event_id_of
from convo.storage.memory import MemoryStorage
from tests.cluster_redis.conftest import NodeFactory, RedisServer
from tests.faults.proxy import FaultProxy

CID = "c-redis-bus"
Proxies = Callable[[int], Awaitable[FaultProxy]]


async def _received(subscription: Subscription, count: int, timeout: float = 5) -> list[Payload]:
    out: list[Payload] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await subscription.get())
    return out


async def _ends_overflowed(subscription: Subscription, timeout: float = 5) -> int:
    """How many payloads it still delivered before it ended as overflowed."""
    delivered = 0
    async with asyncio.timeout(timeout):
        while True:
            try:
                await subscription.get()
            except SubscriptionClosed as closed:
                assert closed.overflowed
                assert subscription.overflowed
                return delivered
            delivered += 1


async def _storage() -> MemoryStorage:
    """The store every node shares (PostgreSQL in a real cluster)."""
    storage = MemoryStorage()
    await storage.conversations.create(ConversationMetadata(conversation_id=CID))
    return storage


async def test_listeners_on_both_servers_get_every_payload_in_order(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    subscriptions = [a.bus.subscribe(CID), b.bus.subscribe(CID), b.bus.subscribe(CID)]
    for subscription in subscriptions:
        await subscription.ready()
    assert b.bus.subscriber_count(CID) == 2
    payloads: list[Payload] = [{"id": i, "message": f"m{i}"} for i in range(300)]
    payloads.insert(150, status_update("info", "STATUS$READY", "ready"))
    for payload in payloads:
        await a.bus.publish(CID, payload)
    for subscription in subscriptions:
        assert await _received(subscription, len(payloads)) == payloads
    for subscription in subscriptions:
        subscription.close()
    assert b.bus.subscriber_count(CID) == 0


async def test_a_listener_that_falls_behind_ends_overflowed(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    slow = b.bus.subscribe(CID, max_queue=5)
    keeping_up = b.bus.subscribe(CID)
    await slow.ready()
    for i in range(20):
        await a.bus.publish(CID, {"id": i})
    assert [p["id"] for p in await _received(keeping_up, 20)] == list(range(20))
    assert await _ends_overflowed(slow) == 5  # what fitted in its queue, then the end
    keeping_up.close()


async def test_a_ready_subscription_misses_nothing_published_after_it(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    for i in range(20):  # a fresh channel each time: readiness is Redis's confirmation
        subscription = b.bus.subscribe(f"{CID}-{i}")
        await subscription.ready()
        await a.bus.publish(f"{CID}-{i}", {"id": 0})
        assert await _received(subscription, 1) == [{"id": 0}]
        subscription.close()


async def test_a_listener_that_comes_back_right_after_the_last_one_left_gets_events(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    for round_ in range(3):
        subscription = b.bus.subscribe(CID)
        await subscription.ready()
        await a.bus.publish(CID, {"id": round_})
        assert await _received(subscription, 1) == [{"id": round_}]
        subscription.close()  # the channel's last listener leaves ...
        if round_ == 1:
            await asyncio.sleep(0.2)  # ... and the server unsubscribes, or not yet


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_a_listener_whose_connection_breaks_ends_overflowed(
    redis_server: RedisServer, nodes: NodeFactory, proxies: Proxies, fault: str
) -> None:
    proxy = await proxies(redis_server.port)
    a = nodes(redis_server.url, "a")
    b = nodes(f"redis://127.0.0.1:{proxy.port}/0", "b")
    subscription = b.bus.subscribe(CID)
    await subscription.ready()
    await a.bus.publish(CID, {"id": 0})
    assert await _received(subscription, 1) == [{"id": 0}]
    proxy.cut() if fault == "cut" else proxy.stall()
    await a.bus.publish(CID, {"id": 1})  # lost for b, which must be told
    assert await _ends_overflowed(subscription) == 0
    proxy.restore()
    again = b.bus.subscribe(CID)  # connects again by itself
    await again.ready()
    assert not again.overflowed
    await a.bus.publish(CID, {"id": 2})
    assert await _received(again, 1) == [{"id": 2}]
    again.close()


async def test_a_subscription_made_while_redis_is_down_ends_overflowed(
    redis_server: RedisServer, nodes: NodeFactory, proxies: Proxies
) -> None:
    proxy = await proxies(redis_server.port)
    proxy.cut()
    b = nodes(f"redis://127.0.0.1:{proxy.port}/0", "b")
    subscription = b.bus.subscribe(CID)
    await subscription.ready()  # gives up after the ready timeout
    assert subscription.overflowed
    with pytest.raises(SubscriptionClosed):
        await subscription.get()
    assert b.bus.subscriber_count(CID) == 0


async def test_appends_neither_fail_nor_wait_while_redis_does_not_answer(
    redis_server: RedisServer, nodes: NodeFactory, proxies: Proxies
) -> None:
    proxy = await proxies(redis_server.port)
    a = nodes(f"redis://127.0.0.1:{proxy.port}/0", "a")
    storage = await _storage()
    log = EventLog(storage.events, a.bus)
    proxy.stall()
    started = time.monotonic()
    for i in range(50):
        await log.append(CID, message_action(f"m{i}", EventSource.USER))
    assert time.monotonic() - started < 0.5  # a stalled Redis would take seconds per call
    assert len(await storage.events.list(CID)) == 50


async def test_events_the_owner_could_not_publish_reach_listeners_once_redis_is_back(
    redis_server: RedisServer, nodes: NodeFactory, proxies: Proxies
) -> None:
    """Only the owner's path to Redis breaks: listeners elsewhere stay subscribed and are not
    told. The owner publishes its last event again once it can, and they catch up."""
    proxy = await proxies(redis_server.port)
    a = nodes(f"redis://127.0.0.1:{proxy.port}/0", "a")
    b = nodes(redis_server.url, "b")
    storage = await _storage()
    log = EventLog(storage.events, a.bus)
    async with EventFeed(storage.events, b.bus, CID) as feed:
        assert await feed.next(idle_timeout=0.2) is None  # subscribed, nothing stored yet
        proxy.cut()
        for i in range(10):
            await log.append(CID, message_action(f"m{i}", EventSource.USER))
        await asyncio.sleep(2.5)  # longer than redis-py's retries of the publish
        assert await feed.next(idle_timeout=0.01) is None  # nothing reached b
        proxy.restore()
        ids = []
        async with asyncio.timeout(10):
            while len(ids) < 10:
                payload = await feed.next()
                assert isinstance(payload, dict)
                ids.append(event_id_of(payload))
    assert ids == list(range(10))


async def _follow(storage: MemoryStorage, node: Any, last_id: int) -> tuple[list[int], int]:
    """Follow the conversation as a client does, resuming after the last id it got whenever
    its feed ends, until it has ``last_id``: the ids it got, and how many feeds it took."""
    ids: list[int] = []
    feeds = 0
    after = -1
    while after < last_id:
        feeds += 1
        async with EventFeed(storage.events, node.bus, CID, after_id=after) as feed:
            while after < last_id:
                payload = await feed.next(idle_timeout=0.2)
                if isinstance(payload, FeedEnd):
                    assert feed.fell_behind
                    break
                if payload is not None and (event_id := event_id_of(payload)) is not None:
                    ids.append(event_id)
                after = feed.last_event_id
    return ids, feeds


async def _write(log: EventLog, count: int) -> None:
    for i in range(count):
        await log.append(CID, message_action(f"m{i}", EventSource.USER))
        await asyncio.sleep(0.01)


async def test_a_stream_resumes_without_gap_or_duplicate_across_a_cut(
    redis_server: RedisServer, nodes: NodeFactory, proxies: Proxies
) -> None:
    proxy = await proxies(redis_server.port)
    a = nodes(redis_server.url, "a")
    b = nodes(f"redis://127.0.0.1:{proxy.port}/0", "b")
    storage = await _storage()
    follower = asyncio.create_task(_follow(storage, b, 199))
    writer = asyncio.create_task(_write(EventLog(storage.events, a.bus), 200))
    await asyncio.sleep(0.5)
    proxy.cut()
    await asyncio.sleep(0.5)
    proxy.restore()
    await writer
    ids, feeds = await asyncio.wait_for(follower, 20)
    assert ids == list(range(200))
    assert feeds >= 2  # the cut ended a feed: the stream did resume


async def test_a_stream_resumes_without_gap_or_duplicate_across_a_redis_restart(
    own_redis: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(own_redis.url, "a"), nodes(own_redis.url, "b")
    storage = await _storage()
    followers = [asyncio.create_task(_follow(storage, node, 199)) for node in (a, b)]
    writer = asyncio.create_task(_write(EventLog(storage.events, a.bus), 200))
    await asyncio.sleep(0.5)
    own_redis.stop()
    await asyncio.sleep(0.5)
    own_redis.start()
    await writer
    for follower in followers:
        ids, feeds = await asyncio.wait_for(follower, 20)
        assert ids == list(range(200))
        assert feeds >= 2


async def _count_becomes(node: Any, expected: int) -> None:
    async with asyncio.timeout(5):
        while node.bus.subscriber_count(CID) != expected:
            await asyncio.sleep(0.02)


async def test_the_publishing_server_counts_listeners_on_other_servers(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    """So that it never closes a conversation as unwatched while a client elsewhere
    follows it."""
    a, b, c = (nodes(redis_server.url, name) for name in "abc")
    await a.bus.publish(CID, {"id": 0})  # a runs the conversation
    assert a.bus.subscriber_count(CID) == 0
    on_b = [b.bus.subscribe(CID), b.bus.subscribe(CID)]
    on_c = c.bus.subscribe(CID)
    for subscription in [*on_b, on_c]:
        await subscription.ready()
    await _count_becomes(a, 2)  # two servers listen (b's two listeners share a connection)
    here = a.bus.subscribe(CID)
    await here.ready()
    await _count_becomes(a, 3)
    assert b.bus.subscriber_count(CID) == 2  # b does not publish: its own listeners only
    for subscription in [*on_b, on_c, here]:
        subscription.close()
    await _count_becomes(a, 0)


async def test_listeners_coming_and_going_miss_nothing_published_once_they_are_ready(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    """Random subscribes and closes on two servers while the owner publishes to a few
    channels: every subscription gets, in order, each payload published to its channel
    after it was ready (earlier ones may come too: they are in the store)."""
    rng = random.Random(7)
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    channels = [f"{CID}-{i}" for i in range(4)]
    published = dict.fromkeys(channels, 0)
    # subscription -> (its server, channel, first sequence number it must get)
    open_: dict[Subscription, tuple[Any, str, int]] = {}
    checked = 0

    async def publish(channel: str) -> None:
        await a.bus.publish(channel, {"id": published[channel]})
        published[channel] += 1

    async def check(subscription: Subscription) -> None:
        _, channel, first = open_.pop(subscription)
        await publish(channel)  # one it must get, at least
        got = []
        async with asyncio.timeout(5):
            while not got or got[-1] < published[channel] - 1:
                got.append((await subscription.get())["id"])
        subscription.close()
        assert got == sorted(got)
        assert [n for n in got if n >= first] == list(range(first, published[channel]))

    async def subscribe(node: Any, channel: str) -> None:
        subscription = node.bus.subscribe(channel, max_queue=10_000)
        await subscription.ready()
        open_[subscription] = (node, channel, published[channel])

    for _ in range(400):
        action = rng.random()
        if action < 0.3:
            await subscribe(rng.choice([a, b]), rng.choice(channels))
        elif action < 0.5 and open_:
            leaving = rng.choice(list(open_))
            node, channel, _ = open_[leaving]
            if action < 0.4:
                await check(leaving)
                checked += 1
            else:
                leaving.close()
                del open_[leaving]
            if rng.random() < 0.5:  # back at once, before the server unsubscribes
                await subscribe(node, channel)
        else:
            await publish(rng.choice(channels))
        if rng.random() < 0.1:
            await asyncio.sleep(rng.choice([0, 0.001, 0.01]))
    for subscription in list(open_):
        await check(subscription)
        checked += 1
    assert checked > 30
