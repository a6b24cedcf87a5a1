"""A strict MSNP2-12 test server (dispatch, notification, switchboard, Passport Nexus)
for testing the ``puppets`` client: it speaks each version's exact command forms and
closes the connection on what the servers in the wild would not accept.

Modules: ``framing`` (its own line/payload reader), ``accounts`` (data model),
``hub`` (shared state, presence fan-out), ``notification`` and ``lists`` (NS commands),
``syncformat`` and ``presence`` (per-version line forms), ``switchboard``, ``passport``
(HTTP Nexus/login), ``tickets``, ``stats``, ``server`` (MSNPTestServer), ``__main__``
(run it as a process).
"""

from .accounts import Account, Group
from .server import MSNPTestServer
from .stats import ServerStats

__all__ = ["Account", "Group", "MSNPTestServer", "ServerStats"]
