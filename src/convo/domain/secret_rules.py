"""Which names and values a user's custom secret may have.

A custom secret becomes an environment variable (its name upper-cased) of the conversation's
shell. Environment variables do more than carry data: some make the dynamic loader, a shell,
a language runtime or git load code or run a command as the process starts. A secret must
never be able to do that, inside the sandbox or (should one ever reach it) in a process on the
host, so a name must match an allow-pattern *and* miss a deny list:

- allowed: ``[A-Za-z_][A-Za-z0-9_]{0,127}`` (a portable environment variable name);
- refused, by prefix (upper-cased): the loader (``LD_``, ``DYLD_``, ``GCONV_``, ``GLIBC_``),
  bash (``BASH_``: ``BASH_ENV``, ``BASH_FUNC_...``), git (``GIT_``: ``GIT_CONFIG_*``,
  ``GIT_SSH_COMMAND``, ``GIT_EXEC_PATH``, ``GIT_DIR``...), Python (``PYTHON``), Perl
  (``PERL``), Ruby (``RUBY``), Node (``NODE_``), OpenSSL (``OPENSSL_``: engines and
  providers are loaded libraries), Lua (``LUA_``), XDG base directories (``XDG_``: they move
  where git and others read their configuration);
- refused, by exact name: what shells read at start or per prompt (``ENV``, ``IFS``,
  ``PROMPT_COMMAND``, ``SHELLOPTS``, ``PS0``-``PS4``, ``CDPATH``, ``GLOBIGNORE``...), what the
  sandbox itself sets (``PATH``, ``HOME``, ``LANG``, ``TERM``, ``SHELL``, ``USER``, ``PWD``,
  ``TMPDIR``...), locale and resolver files (``LOCPATH``, ``NLSPATH``, ``HOSTALIASES``...),
  the JVM's option variables, and variables that name a program to run (``EDITOR``,
  ``PAGER``, ``LESSOPEN``, ``SSH_ASKPASS``...).

Anything else, ``GITHUB_TOKEN``, ``OPENAI_API_KEY`` or ``PIP_INDEX_URL`` for example, is a
value for programs to read, not a way to change what runs. Values may not hold NUL (no
environment can carry it).
"""

from __future__ import annotations

import re

SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_NAME = re.compile(SECRET_NAME_PATTERN)

REFUSED_PREFIXES = (
    "LD_",
    "DYLD_",
    "GCONV_",
    "GLIBC_",
    "MALLOC_",
    "BASH_",
    "GIT_",
    "PYTHON",
    "PERL",
    "RUBY",
    "NODE_",
    "OPENSSL_",
    "LUA_",
    "XDG_",
)

REFUSED_NAMES = frozenset(
    {
        # shells: read at start, per command or per prompt
        "ENV",
        "BASHOPTS",
        "SHELLOPTS",
        "IFS",
        "PROMPT_COMMAND",
        "PS0",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "CDPATH",
        "GLOBIGNORE",
        "HISTFILE",
        "INPUTRC",
        "ZDOTDIR",
        "POSIXLY_CORRECT",
        # set by the sandbox; a secret must not replace them
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TERMINFO",
        "SHELL",
        "USER",
        "LOGNAME",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "TMPDIR",
        "TZDIR",
        # files the C library loads
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        # runtimes' option variables
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "RUBYOPT",
        "NODE_OPTIONS",
        # variables naming a program that other programs run
        "EDITOR",
        "VISUAL",
        "PAGER",
        "MANPAGER",
        "LESSOPEN",
        "LESSCLOSE",
        "BROWSER",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
    }
)


def refused_name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a secret, or None when it can."""
    if not _NAME.fullmatch(name):
        return "must be 1-128 letters, digits or underscores, not starting with a digit"
    upper = name.upper()
    if upper in REFUSED_NAMES or upper.startswith(REFUSED_PREFIXES):
        return (
            f"{upper} changes how programs load or start and cannot be a secret's name "
            "(see SECURITY.md)"
        )
    return None


# One environment string (NAME=value) may hold at most 128 KiB (the kernel's
# MAX_ARG_STRLEN); past it every program the shell starts fails with "Argument list too
# long". Half of it leaves room for any name and is plenty for a key or a certificate.
MAX_VALUE_BYTES = 64 * 1024


def refused_value_reason(value: str) -> str | None:
    """Why ``value`` cannot be a secret's value, or None when it can."""
    if "\0" in value:
        return "must not contain a NUL character"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        return "must be at most 64 KiB (UTF-8): a longer one cannot be an environment variable"
    return None
