"""Errors raised by puppets, and the meaning of every MSNP error code.

The codes are those of the MSNP reference list (the IETF draft's ERR_* names, as the seed
deck lists them); tests/test_error_meanings.py holds that list and checks this table
against it.
"""

from __future__ import annotations

ERROR_MEANINGS: dict[int, str] = {
    200: "syntax error",
    201: "invalid parameter",
    205: "invalid user",
    206: "domain name missing",
    207: "already logged in",
    208: "invalid user name",
    209: "invalid nickname",
    210: "user list full",
    215: "user already on the list",
    216: "user not on the list",
    217: "user not online",
    218: "already in that mode",
    219: "user is in the opposite list",
    223: "too many groups",
    224: "invalid group",
    225: "user not in that group",
    229: "group name too long",
    230: "cannot remove group 0",
    231: "invalid group",
    240: "empty domain",
    280: "switchboard failed",
    281: "transfer to the notification server failed",
    300: "required field missing",
    302: "not logged in",
    500: "internal server error",
    501: "database server error",
    502: "command disabled",
    510: "file operation failed",
    520: "memory allocation failed",
    540: "challenge response failed",
    600: "server is busy",
    601: "server is unavailable",
    602: "peer name server is down",
    603: "database connection failed",
    604: "server is going down",
    605: "server unavailable",
    702: "invalid location",
    707: "could not create connection",
    710: "bad CVR parameters",
    711: "write is blocking",
    712: "session is overloaded",
    713: "too many active users",
    714: "too many sessions",
    715: "not expected",
    717: "bad friend file",
    731: "not expected",
    800: "changing too rapidly",
    910: "server too busy",
    911: "authentication failed",
    912: "server too busy",
    913: "not allowed when offline",
    914: "server unavailable",
    915: "server unavailable",
    916: "server unavailable",
    917: "authentication failed",
    918: "server too busy",
    919: "server too busy",
    920: "not accepting new users",
    921: "server too busy",
    922: "server too busy",
    923: "Kids Passport without parental consent",
    924: "Passport account not yet verified",
    928: "bad ticket",
}


def error_meaning(code: int) -> str:
    return ERROR_MEANINGS.get(code, "unknown error")


class PuppetError(Exception):
    """Base class of everything puppets raises."""


class ProtocolError(PuppetError):
    """The peer broke framing or sent something we cannot parse; the link is unusable."""

    parsed: list = []  # commands that were complete before the fault  # noqa: RUF012


class MSNPError(PuppetError):
    """The server answered a command with an MSNP error code."""

    def __init__(self, code: int, command: str = "", trid: int | None = None) -> None:
        self.code = code
        self.command = command
        self.trid = trid
        self.meaning = error_meaning(code)
        where = f" to {command}" if command else ""
        super().__init__(f"MSNP error {code}{where}: {self.meaning}")


class AuthenticationError(PuppetError):
    """The server or Passport refused the credentials (not a network problem)."""


class ConnectionLost(PuppetError):
    """The link closed before the answer came."""


class SignedOutElsewhere(PuppetError):
    """OUT OTH: the account signed in from another place."""


class ReplyTimeout(PuppetError):
    """No answer came in time."""


class NotSupported(PuppetError):
    """The negotiated protocol version has no command for this operation."""
