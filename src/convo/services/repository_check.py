"""Checking a new conversation's repository at create, as OpenHands does, so that a typo
or a repository the token cannot read is a 400 at once instead of an error event after the
conversation started.

- A malformed name (not ``owner/repo``, ``..`` segments) is refused.
- With a token for the repository's provider (or, when the create names no provider, for
  any provider), the provider's API is asked for the repository with each token in turn; if
  none can read it, the create is refused with the providers' reasons. The provider that
  could read it becomes the conversation's ``git_provider`` when none was given.
- Without any token nothing can be asked: the repository is accepted, and the start clones
  it anonymously (public repositories work; a private or missing one ends the start with an
  error event). OpenHands refuses such a create; convo keeps public repositories usable
  without a token.
- Providers convo cannot ask (Bitbucket, enterprise SSO) are accepted unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping

from convo.domain.conversation import PROVIDER_ENV_VARS, ProviderToken, ProviderType
from convo.errors import RepositoryNotAccessible
from convo.services.git_providers import ProviderClient, ProviderError, ProviderUnsupported
from convo.services.repository import RepositoryError, RepositoryRemote


async def check_repository(
    repository: str,
    provider: ProviderType | None,
    tokens: Mapping[ProviderType, ProviderToken],
    env: Mapping[str, str],
) -> ProviderType | None:
    """The provider to use for ``repository``: ``provider``, or the one whose token could
    read it; raises RepositoryNotAccessible when the name is malformed or no token can."""
    try:
        RepositoryRemote(repository, provider or ProviderType.GITHUB)
    except RepositoryError as exc:
        raise RepositoryNotAccessible(str(exc)) from None
    candidates = [provider] if provider is not None else list(ProviderType)
    reasons: list[str] = []
    for candidate in candidates:
        stored = tokens.get(candidate)
        token = env.get(PROVIDER_ENV_VARS.get(candidate, "")) or (stored.token if stored else None)
        if not token:
            continue
        client = ProviderClient(
            candidate, ProviderToken(token, host=stored.host if stored else None)
        )
        try:
            await client.repository(repository)
        except ProviderUnsupported:
            return candidate  # cannot be asked: the clone will tell
        except ProviderError as exc:
            reasons.append(str(exc))
            continue
        return candidate
    if reasons:
        raise RepositoryNotAccessible(
            f"Repository {repository} is not accessible: {'; '.join(reasons)}"
        )
    return provider
