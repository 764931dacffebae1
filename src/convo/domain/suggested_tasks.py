"""The first message of a conversation started from a suggested task.

The web client's task cards (``GET /api/user/suggested-tasks``) send the task itself at
create (``suggested_task``: provider, kind, repository, issue or PR number, title); the
conversation starts with the prompt written here for its kind, as OpenHands starts it with
its own, so the agent knows where to look and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from convo.domain.conversation import ProviderType


class TaskType(StrEnum):
    MERGE_CONFLICTS = "MERGE_CONFLICTS"
    FAILING_CHECKS = "FAILING_CHECKS"
    UNRESOLVED_COMMENTS = "UNRESOLVED_COMMENTS"
    OPEN_ISSUE = "OPEN_ISSUE"
    OPEN_PR = "OPEN_PR"
    CREATE_MICROAGENT = "CREATE_MICROAGENT"


@dataclass(frozen=True)
class _Terms:
    request: str  # "pull request"
    short: str  # "PR"
    api: str  # "GitHub API"
    token_variable: str  # "GITHUB_TOKEN"
    ci: str  # "GitHub Actions"


_TERMS = {
    ProviderType.GITHUB: _Terms(
        "pull request", "PR", "GitHub API", "GITHUB_TOKEN", "GitHub Actions"
    ),
    ProviderType.GITLAB: _Terms(
        "merge request", "MR", "GitLab API", "GITLAB_TOKEN", "GitLab CI pipelines"
    ),
    ProviderType.BITBUCKET: _Terms(
        "pull request", "PR", "Bitbucket API", "BITBUCKET_TOKEN", "Bitbucket Pipelines"
    ),
}


def task_prompt(
    provider: ProviderType, task_type: TaskType, repository: str, number: int, title: str
) -> str:
    """What the agent is asked to do for a suggested task."""
    terms = _TERMS.get(provider, _TERMS[ProviderType.GITHUB])
    look_up = (
        f"Use the {terms.api} with the token in ${terms.token_variable} to read the "
        f"{terms.short}'s details"
    )
    on_request = (
        f"You are working on {terms.request} #{number} ({title!r}) of {repository}. "
        f"{look_up}, check out its branch and compare it with its base branch to see what it "
        "is meant to do."
    )
    if task_type is TaskType.MERGE_CONFLICTS:
        return (
            f"{on_request}\nThen resolve its merge conflicts; where the right resolution is "
            "unclear, read the history of the commits that conflict. Commit and push to the "
            "same branch."
        )
    if task_type is TaskType.FAILING_CHECKS:
        return (
            f"{on_request}\nThen find which {terms.ci} checks fail on its latest commit, "
            "reproduce the failures locally, fix them and push. Wait for the checks to run "
            "again (poll every 30 seconds) and repeat until they pass."
        )
    if task_type is TaskType.UNRESOLVED_COMMENTS:
        return (
            f"{on_request}\nThen read every review comment on it, address the ones not yet "
            "addressed, and commit and push to the same branch."
        )
    if task_type is TaskType.OPEN_PR:
        return (
            f"{on_request}\nThen see what is still missing for it to be merged (review "
            "comments, failing checks, conflicts) and do it; push to the same branch."
        )
    if task_type is TaskType.CREATE_MICROAGENT:
        return (
            f"Write a microagent for {repository}: a Markdown file under "
            ".openhands/microagents/ describing how to build, test and work on the "
            f"repository, based on its code and docs. Context: {title}"
        )
    return (
        f"You are working on issue #{number} ({title!r}) of {repository}. Use the "
        f"{terms.api} with the token in ${terms.token_variable} to read the issue and its "
        "comments, check out a new branch, make the changes that fix the issue, and open a "
        f"{terms.request} that references it."
    )
