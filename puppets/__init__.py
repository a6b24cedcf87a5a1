"""puppets: an asyncio MSNP (MSN Messenger, protocol versions 2-18) client library.

Independent of msnbridge: usable from scripts and from ``python -m puppets``.
"""

from .client import Client
from .config import ClientConfig
from .contacts import Contact, ContactList, Group, Lists
from .errors import (
    AuthenticationError,
    ConnectionLost,
    MSNPError,
    NotSupported,
    ProtocolError,
    PuppetError,
    ReplyTimeout,
    SignedOutElsewhere,
)
from .event.session import SessionState
from .msnobject import InvalidMSNObject, MSNObject
from .p2p import PictureCache
from .soap import SoapError, SoapFault, SoapHTTPError

__all__ = [
    "AuthenticationError",
    "Client",
    "ClientConfig",
    "ConnectionLost",
    "Contact",
    "ContactList",
    "Group",
    "InvalidMSNObject",
    "Lists",
    "MSNObject",
    "MSNPError",
    "NotSupported",
    "PictureCache",
    "ProtocolError",
    "PuppetError",
    "ReplyTimeout",
    "SessionState",
    "SignedOutElsewhere",
    "SoapError",
    "SoapFault",
    "SoapHTTPError",
]
