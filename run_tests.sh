#!/usr/bin/env bash
# Runs the test suite in the project's own .venv (created and filled on first use).
#   ./run_tests.sh               all tests
#   ./run_tests.sh -k extract    any pytest arguments pass through
source "$(dirname "$0")/scripts/bootstrap.sh"
apt_install chromium chromium-driver   # the browser end-to-end test of the chat app
python -m pytest "$@"
