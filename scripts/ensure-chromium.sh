#!/usr/bin/env bash
# The console's browser tests drive the system Chromium (Playwright's own
# browser download cannot work here). Install Debian's `chromium` when it is
# missing and this user may; otherwise say so and go on: the tests then skip
# with the reason, or fail under CI=true.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing Debian's chromium for the console's browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure-chromium: $CHROMIUM is missing and cannot be installed here;" \
       "the browser tests will skip (or fail under CI=true)" >&2
fi
