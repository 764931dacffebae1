"""What each kind of failure answers over HTTP: a client can tell its own mistake (4xx) from
the server's (5xx) and knows when waiting helps."""

from __future__ import annotations

from convo.api.errors import status_for
from convo.errors import StorageUnavailable, TooManyConversations


def test_the_running_limit_is_the_user_s_to_resolve_not_a_server_error() -> None:
    error = TooManyConversations(3)
    assert status_for(error) == 429
    assert "stop one" in str(error)


def test_an_unreachable_database_is_a_temporary_outage() -> None:
    assert status_for(StorageUnavailable("connection refused")) == 503
