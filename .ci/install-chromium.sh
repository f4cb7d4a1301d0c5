#!/usr/bin/env bash
# Install headless Chromium for the HTML report test (tests/test_report_html.py). Idempotent, quiet.
# Debian ships it as `chromium`; Ubuntu's `chromium-browser` is a snap shim, so prefer Debian's package.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: 'chromium' not on PATH after install" >&2; exit 1; }
