"""The exception tree of convo.

    ConvoError
    ├── AnotherServerRunning         start-up: a data dir or database is taken
    ├── ConversationError            service layer
    │   ├── ConversationNotFound
    │   ├── InvalidConversationId
    │   ├── UnsupportedUserAction
    │   ├── ServerShuttingDown
    │   └── TooManyConversations     the user's limit could not be made room under
    ├── StorageError                 storage adapters
    │   ├── RecordNotFound
    │   ├── StorageUnavailable       the database cannot be reached or timed out (retry)
    │   ├── StorageFull              the disk under the database is full (retry once freed)
    │   └── LeaseLost                a loop's write under a lease another node took (fencing)
    ├── SandboxError                 runtime adapters
    │   ├── SandboxUnavailable
    │   ├── PathOutsideWorkspace
    │   ├── WorkspaceQuotaExceeded
    │   ├── DiskNearlyFull
    │   └── RepositoryError          (services.repository: a checkout failed)
    ├── ClusterError                 cluster adapters (Redis)
    │   ├── NodeUnreachable          no node answered a request in time
    │   └── NodeRequestFailed        the node that answered failed to handle the request
    ├── LLMError                     llm adapters
    │   ├── LLMAuthenticationError
    │   ├── LLMConnectionError
    │   ├── LLMRateLimitError
    │   ├── LLMBadRequestError
    │   └── LLMNotConfigured
    └── ToolServerError              an MCP server (agent.mcp_client, over the mcp SDK)

The agent loop raises none of its own: its failures (caps, stuck patterns, tool errors)
become error events, and the conversation stays usable.

Third-party errors are translated into these at the adapter that meets them; only
``convo.api`` maps them to HTTP status codes.
"""

from __future__ import annotations


class ConvoError(Exception):
    """Root of every error convo raises on purpose."""


# --- start-up ----------------------------------------------------------------------------
class AnotherServerRunning(ConvoError):
    """A running server holds this data dir or database; a second one must not start on it."""


# --- service layer -----------------------------------------------------------------------
class ConversationError(ConvoError):
    """A conversation-level request cannot be carried out."""


class ConversationNotFound(ConversationError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"Conversation {conversation_id} not found")
        self.conversation_id = conversation_id


class InvalidConversationId(ConversationError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__("Invalid conversation id")
        self.conversation_id = conversation_id


class UnsupportedUserAction(ConversationError):
    """A client sent an event users may not send."""


class RepositoryNotAccessible(ConversationError):
    """A new conversation's repository is malformed, or its git provider says it does not
    exist or the stored token may not read it."""


class ServerShuttingDown(ConversationError):
    """The server is shutting down and starts no conversation."""

    def __init__(self) -> None:
        super().__init__(
            "The server is shutting down and accepts no new starts; retry once it is back"
        )


class TooManyConversations(ConversationError):
    """The user runs as many conversations as allowed, and stopping the oldest of them did
    not make room (other starts took it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Too many conversations are running (limit {limit}); stop one and try again"
        )


# --- storage -----------------------------------------------------------------------------
class StorageError(ConvoError):
    """The durable store failed."""


class RecordNotFound(StorageError):
    """A row that was asked for does not exist."""


class StorageUnavailable(StorageError):
    """The database cannot be reached, dropped the connection or did not answer in time.

    Transient: the same write may be tried again once the database is back."""


class StorageFull(StorageError):
    """The disk under the database is full; writes fail until space is freed."""


class LeaseLost(StorageError):
    """A loop's write carried a lease token that is no longer the conversation's: another
    node took it over (or it was revoked). The write was refused; the loop must stop
    without writing anything more."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"Conversation {conversation_id} is owned by another server now")
        self.conversation_id = conversation_id


# --- runtime -----------------------------------------------------------------------------
class SandboxError(ConvoError):
    """The workspace or its shell failed."""


class SandboxUnavailable(SandboxError):
    """The configured sandbox cannot start on this machine."""


class PathOutsideWorkspace(SandboxError):
    """A file path resolves outside the conversation's workspace."""


class WorkspaceQuotaExceeded(SandboxError):
    """A workspace went over its disk quota; its sandbox's commands were stopped."""


class DiskNearlyFull(SandboxError):
    """The data dir's disk is nearly full: no new work is taken on."""


# --- cluster -----------------------------------------------------------------------------
class ClusterError(ConvoError):
    """Coordination between servers failed (Redis carries only what can be lost)."""


class NodeUnreachable(ClusterError):
    """No node answered a request in time: it is gone, or Redis is. The request may still
    have been carried out (at most once); ask the store for what happened."""

    def __init__(self, node_id: str, kind: str, detail: str = "no answer in time") -> None:
        super().__init__(f"Server {node_id} did not answer {kind!r}: {detail}")
        self.node_id = node_id
        self.kind = kind


class NodeRequestFailed(ClusterError):
    """The node that got a request raised while handling it; ``error_type`` is the name of
    the exception class it raised (a convo error's, when it was one)."""

    def __init__(self, node_id: str, kind: str, error_type: str, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.kind = kind
        self.error_type = error_type


# --- llm ---------------------------------------------------------------------------------
class LLMError(ConvoError):
    """The language model could not be called or answered unusably."""


class LLMAuthenticationError(LLMError):
    """The provider refused the API key."""


class LLMConnectionError(LLMError):
    """The provider's endpoint could not be reached."""


class LLMRateLimitError(LLMError):
    """The provider asked us to slow down."""


class LLMBadRequestError(LLMError):
    """The provider refused the request itself (unknown model, context too long, ...)."""


class LLMNotConfigured(LLMError):
    """No model is configured for this user or server."""


class ToolServerError(ConvoError):
    """An MCP server could not be started or reached, or failed a call; the message names
    the server and quotes no secret."""
