#!/bin/sh
# Installs the system packages convo's sandbox needs (bubblewrap), when missing and when we can.
set -eu
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing bubblewrap (the sandbox for agent commands)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
else
  echo "warning: bubblewrap (bwrap) is not installed; install it to sandbox agent commands" >&2
  echo "         (Debian/Ubuntu: sudo apt-get install bubblewrap)" >&2
fi
