#!/usr/bin/env bash
# Install headless Chromium (Debian's package `chromium`) for the browser tests of tests/browser/.
# Idempotent: does nothing when chromium is already installed; runs `apt-get update` only when the package is
# unknown to apt (no package lists yet). Needs root (CI containers run as root) or sudo.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "browser tests: $(command -v chromium) is installed"
    exit 0
fi

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        echo "browser tests: need root or sudo to install chromium" >&2; return 1; fi
}

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show chromium >/dev/null 2>&1; then
    as_root apt-get update -q
fi
as_root apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
command -v chromium
