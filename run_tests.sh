#!/usr/bin/env bash
# Runs the test suite in the project's own .venv (created and filled on first use).
#   ./run_tests.sh               all tests
#   ./run_tests.sh -k extract    any pytest arguments pass through
#   ./run_tests.sh -n 0          one process, no parallel workers
source "$(dirname "$0")/scripts/bootstrap.sh"
apt_install chromium chromium-driver   # the browser end-to-end test of the chat app
# Parallel workers (pytest-xdist) unless -n is given: one per core, at most 4 (each
# holds a demo model in memory). Work-stealing: a worker that runs out takes tests
# queued on another, so the slow tests (scheduled first) never finish alone.
if ! printf '%s\n' "$@" | grep -qE '^(-n|--numprocesses)'; then
  set -- -n auto --maxprocesses 4 --dist worksteal "$@"
fi
python -m pytest "$@"
