"""The one-command local sandbox: Synapse (SQLite, loopback), ngIRCd, the MSNP test server
with demo accounts that have each other as contacts, and the bridge configured for them.

Run it with ``scripts/sandbox.sh`` (installs what is missing) or ``python -m
msnbridge.sandbox``. It depends on the repository checkout: the MSNP test server is
``tests/msnp_server`` (started as ``python -m tests.msnp_server`` with the repository on
PYTHONPATH) and Synapse comes from ``.venv-synapse``. The Synapse and ngIRCd launchers here
are separate from the test fixtures in tests/ on purpose: the sandbox keeps fixed ports and a
persistent data directory, the fixtures use throw-away ones.

Modules: ``ports`` (defaults, in-use check), ``process`` (child process in its own process
group), ``synapse``, ``ircd``, ``msn``, ``bridge`` (bridge.yaml + ``msnbridge -g``), ``demo``
(demo Matrix user, auto-login), ``checks`` (``--check``), ``stack`` (start/stop order,
summary), ``__main__`` (command line).
"""

from .ports import Ports
from .stack import Options, Stack

__all__ = ["Options", "Ports", "Stack"]
