#!/bin/sh
# Installs the system packages convo needs, when missing and when we can (root with apt):
# bubblewrap (the sandbox for agent commands), slirp4netns (its isolated network,
# CONVO_SANDBOX_NETWORK=isolated); with the argument "test", also chromium
# (the web page's tests drive Debian's Chromium).
set -eu
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v slirp4netns >/dev/null 2>&1 || missing="$missing slirp4netns"
if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ]; then missing="$missing chromium"; fi
if [ -z "$missing" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing$missing (the sandbox for agent commands and its network; the browser of the page's tests)"
  apt-get update -qq >/dev/null 2>&1 || true
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
  echo "warning: missing$missing; install them to sandbox agent commands (bubblewrap, slirp4netns)" >&2
  echo "         and to run the web page's tests (chromium)" >&2
  echo "         (Debian/Ubuntu: sudo apt-get install$missing)" >&2
fi
