#!/usr/bin/env bash
# Entry point of the msnbridge image (as the mautrix bridges' images do it):
#   1st start: no config.yaml in the data volume -> write the example config, say what to
#              edit, exit.
#   2nd start: no registration.yaml -> `msnbridge -g` generates the tokens into config.yaml and
#              writes the registration; register it with Synapse, then start again.
#   later:     run the bridge.
# DATA_DIR, MSNBRIDGE (the command) and EXAMPLE_CONFIG are overridable, which is how
# tests/test_docker_entrypoint.py runs this very script without Docker.
set -euo pipefail

DATA_DIR=${DATA_DIR:-/data}
MSNBRIDGE=${MSNBRIDGE:-msnbridge}
EXAMPLE_CONFIG=${EXAMPLE_CONFIG:-/opt/msnbridge/bridge.yaml.example}
CONFIG="$DATA_DIR/config.yaml"
REGISTRATION="$DATA_DIR/registration.yaml"

cd "$DATA_DIR"

# MSNBRIDGE_ROLE=pool: a connection pool (docs/deployment.md). It reads the core's
# config.yaml (same database, same pools.redis_url) and generates nothing.
if [ "${MSNBRIDGE_ROLE:-core}" = "pool" ]; then
    if [ ! -f "$CONFIG" ]; then
        echo "msnbridge pool: no $CONFIG; give the pool the core's config.yaml" >&2
        exit 2
    fi
    exec "$MSNBRIDGE" pool -c "$CONFIG"
fi

if [ ! -f "$CONFIG" ]; then
    # Two container-specific defaults: listen on all interfaces of the container (Synapse
    # reaches it over the compose network), and keep the database in the volume.
    sed -e 's|^    hostname: 127\.0\.0\.1$|    hostname: 0.0.0.0|' \
        -e "s|^database: sqlite:msnbridge\.db\$|database: sqlite:$DATA_DIR/msnbridge.db|" \
        "$EXAMPLE_CONFIG" > "$CONFIG"
    chmod 600 "$CONFIG"
    cat <<MSG
Wrote an example configuration to $CONFIG. Edit it, then start the container again:
  homeserver.address   how the bridge reaches Synapse, e.g. http://synapse:8008
  homeserver.domain    your server name (the part after the colon in user IDs)
  appservice.address   how Synapse reaches the bridge, e.g. http://msnbridge:29390
  bridge.permissions   who may use the bridge
  msn.*                the MSN (revival) server to log in to
The next start generates the tokens and the appservice registration.
MSG
    exit 0
fi

if [ ! -f "$REGISTRATION" ]; then
    "$MSNBRIDGE" -g -c "$CONFIG" -r "$REGISTRATION"
    cat <<MSG
Register $REGISTRATION with Synapse: add its path (as Synapse sees it) to
app_service_config_files in homeserver.yaml and restart Synapse. Then start this container
again to run the bridge.
MSG
    exit 0
fi

exec "$MSNBRIDGE" -c "$CONFIG"
