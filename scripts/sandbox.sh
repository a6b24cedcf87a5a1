#!/usr/bin/env bash
# The one-command local sandbox: Synapse (SQLite), ngIRCd, the MSNP test server with demo
# accounts, and the bridge, all on 127.0.0.1. Prints the addresses and demo logins, writes
# them as JSON to sandbox-data/sandbox.json; Ctrl-C stops everything. State stays in
# sandbox-data/ for the next start.
# Usage: scripts/sandbox.sh [--check] [--auto-login] [--no-irc] [--synapse-port N] ...
#        (python -m msnbridge.sandbox --help lists every option)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The same install lines as scripts/test.sh (the sandbox runs the test MSNP server), run only
# when pyproject.toml, setup.py or the C parser (puppets/_codec.c, compiled by the install)
# or the checkout changed since the last install: the stamp in the venv holds their hash and
# the path the editable install points at.
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.msnbridge-sandbox-install
want="$( (cat pyproject.toml setup.py puppets/_codec.c 2>/dev/null || true) | sha256sum | cut -d' ' -f1) $PWD [test]"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/pip install -q -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
fi
if ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get install -y -q ngircd >/dev/null 2>&1 || \
         (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q ngircd >/dev/null 2>&1)) \
         || echo "note: could not install ngircd; run with --no-irc" >&2
    else
        echo "note: ngircd is missing; install it (apt-get install ngircd) or run with --no-irc" >&2
    fi
fi
# Synapse in its own virtualenv because its pinned dependencies are not ours.
if ! .venv-synapse/bin/python -c "import synapse" >/dev/null 2>&1; then
    "$PY" -m venv .venv-synapse && .venv-synapse/bin/pip install -q "matrix-synapse>=1.100,<2"
fi
exec .venv/bin/python -m msnbridge.sandbox "$@"
