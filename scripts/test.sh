#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine, then runs it.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e '.[test]'
# Real IRC servers for the IRC integration tests: ngIRCd (no CAP beyond multi-prefix) and
# InspIRCd (IRCv3 message-tags, echo-message...). Tests skip with a reason when absent.
missing=""
command -v ngircd >/dev/null 2>&1 || missing="$missing ngircd"
command -v inspircd >/dev/null 2>&1 || [ -x /usr/sbin/inspircd ] || missing="$missing inspircd"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086
    (apt-get install -y -q $missing >/dev/null 2>&1 || \
     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null 2>&1)) \
     || echo "note: could not install$missing; those IRC tests will skip" >&2
fi
# Real Synapse for the Matrix integration tests, in its own virtualenv because its pinned
# dependencies are not ours (skipped with a reason when absent).
if ! .venv-synapse/bin/python -c "import synapse" >/dev/null 2>&1; then
    ("$PY" -m venv .venv-synapse && .venv-synapse/bin/pip install -q "matrix-synapse>=1.100,<2") \
     || echo "note: could not install matrix-synapse; Matrix integration tests will skip" >&2
fi
.venv/bin/ruff check .
# Most tests wait on real servers rather than compute, so more processes than cores pay off;
# each test file runs whole in one process (its module fixtures started once), and each
# process starts its own Synapse. TEST_WORKERS=0 runs everything in this one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-4}" --dist loadfile "$@"
