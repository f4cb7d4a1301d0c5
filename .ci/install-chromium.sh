#!/usr/bin/env bash
# Headless Chromium for tests/test_report_html.py (renders report/index.html). Idempotent and quiet:
# does nothing when `chromium` is on PATH; prints apt's log only if the install fails.
# Debian's package is `chromium` (Ubuntu's `chromium-browser` is a snap shim that won't run in CI containers).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-chromium: apt-get install chromium failed" >&2
    exit 1
fi
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: chromium is not on PATH after the install" >&2; exit 1; }
