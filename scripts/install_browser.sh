#!/usr/bin/env bash
# Install Debian's Chromium and fonts for the Playwright browser tests (idempotent).
# Never `playwright install`: its downloaded browser cannot run here; the tests use /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    echo "chromium and fonts already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    chromium fonts-liberation fonts-noto-color-emoji
