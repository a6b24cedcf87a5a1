"""Shared pytest configuration. Fixtures for real servers live in the modules they serve."""

# The real Synapse (session-wide) and the bridge wired to it; see tests/synapse_server.py.
from tests.synapse_server import bridge, bridge_config, synapse  # noqa: F401
