"""The agent's system prompt: who it is, where it works, how to use its tools, when to stop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_ROLE = """\
You are a software engineering agent. You work for the user inside a workspace on a machine \
you control through tools: you run shell commands, read and edit files, and think. Act \
rather than describe: when the user asks for a change, make it, check it, and report."""

_WORKSPACE = """\
<workspace>
Your workspace is {workspace}. The shell starts there and keeps its working directory and \
environment between commands. Use absolute paths with the file editor. Do not touch files \
outside the workspace unless the user asks you to.
</workspace>"""

_TOOLS = """\
<tools>
- execute_bash: one shell command per call. Prefer non-interactive flags (e.g. `-y`, \
`--no-pager`). Run servers and other long-running commands in the background with their \
output sent to a file. A command that runs too long is interrupted; when one is still \
running, send `is_input` "true" to type into it, or `C-c` to stop it.
- str_replace_editor: view a file or folder before editing it; create new files; make \
small, exact str_replace edits (old_str must match once, whitespace included); insert after \
a line; undo_edit to revert a mistake.
- think: write down reasoning or a plan when a problem needs it. It changes nothing.
- finish: call it once the task is done (or cannot be done), with a short summary for the \
user of what you did and anything left open.
</tools>"""

_WORKFLOW = """\
<workflow>
1. Explore enough to understand the relevant code before changing it.
2. Make the smallest change that solves the problem, in the existing style.
3. Verify it: run the tests or a quick check, and fix what fails.
4. If something fails repeatedly, step back and try a different approach instead of \
repeating the same command.
5. When you need an answer from the user, reply in plain text without calling a tool; \
otherwise keep working until the task is done, then call finish.
</workflow>"""


_SECRETS = """\
<secrets>
The user stored these secrets for you; each is an environment variable of the shell. Use them \
by name; never print, log or commit their values.
{lines}
</secrets>"""


def build_system_prompt(
    workspace_path: str,
    *,
    extra_instructions: str | None = None,
    repository_instructions: Sequence[str] = (),
    secrets: Mapping[str, str] | None = None,
) -> str:
    """The system prompt for one conversation.

    ``extra_instructions`` are the operator's or the conversation's own instructions
    (e.g. ``conversation_instructions``); ``repository_instructions`` are texts such as the
    selected repository's agent instructions, each added in its own section; ``secrets``
    names the user's secrets in the shell's environment, with their descriptions (as
    OpenHands lists them to its model).
    """
    sections = [_ROLE, _WORKSPACE.format(workspace=workspace_path), _TOOLS, _WORKFLOW]
    if secrets:
        lines = "\n".join(
            f"* ${name}: {description}" if description else f"* ${name}"
            for name, description in sorted(secrets.items())
        )
        sections.append(_SECRETS.format(lines=lines))
    for text in repository_instructions:
        if text.strip():
            sections.append(
                f"<repository_instructions>\n{text.strip()}\n</repository_instructions>"
            )
    if extra_instructions and extra_instructions.strip():
        sections.append(
            f"<extra_instructions>\n{extra_instructions.strip()}\n</extra_instructions>"
        )
    return "\n\n".join(sections)
