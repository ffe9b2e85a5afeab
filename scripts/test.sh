#!/usr/bin/env bash
# The README's test command (and exactly what CI runs): create .venv if needed, install citewatch
# with its test extra from this checkout, lint, and run the whole test suite.
#
# Under CI (CI=true), or with CITEWATCH_INSTALL_BROWSER=1, Debian's chromium is installed when missing
# so the HTML report is also checked in a real headless browser; elsewhere that one test is skipped
# with a reason when no chromium binary exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ "${CI:-}" = "true" ] || [ "${CITEWATCH_INSTALL_BROWSER:-}" = "1" ]; then
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the browser test (apt-get)…"
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } \
      || echo "warning: could not install chromium; the browser test will be skipped"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/python -m pytest "$@"
