"""Who an IRC user is, for the bridge: the owner of an MSN login made from IRC.

Where the network has services, the identity is the services account the server vouches
for — from the ``account`` message tag (IRCv3 account-tag), account-notify, or WHOIS
numeric 330 — and stays with that account whatever nick its holder uses:
``irc:account:<account>``.

On a network without services (such as a bare ngIRCd) nothing vouches for anyone, and the
identity is the nick: ``irc:nick:<nick>``. That means **whoever holds the nick holds the
MSN login**: someone who takes the nick while its owner is away can send the bot
commands and talk in the owner's conversations as them. Operators of such networks should
reserve nicks some other way, or not offer IRC logins (leave ``bridge.permissions``
without IRC entries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from .bot import AccountChanged, BotConnection, WhoisAccount

WHOIS_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Identity:
    id: str  # the bridged user ID stored in users.id
    nick: str  # the nick they use now (where the bot answers them)
    account: str | None

    @property
    def vouched(self) -> bool:
        return self.account is not None


def identity_for(nick: str, account: str | None) -> Identity:
    if account:
        return Identity(f"irc:account:{account.lower()}", nick, account)
    return Identity(f"irc:nick:{nick.lower()}", nick, None)


class IdentityResolver:
    """Finds the account behind a nick: tag first, then what account-notify told us, then a
    WHOIS (cached until the nick changes or quits)."""

    def __init__(self, bot: BotConnection) -> None:
        self.bot = bot
        self._known: dict[str, str | None] = {}  # lower nick → account (None: none)
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    def on_event(self, event: object) -> None:
        if isinstance(event, AccountChanged):
            self._known[event.nick.lower()] = event.account
        elif isinstance(event, WhoisAccount):
            self._known[event.nick.lower()] = event.account
            future = self._pending.pop(event.nick.lower(), None)
            if future is not None and not future.done():
                future.set_result(event.account)

    def forget(self, nick: str) -> None:
        self._known.pop(nick.lower(), None)

    async def resolve(self, nick: str, tags: Mapping[str, str | None]) -> Identity:
        if "account" in tags:  # account-tag: present exactly when logged in
            return identity_for(nick, tags["account"] or None)
        if "account-tag" in self.bot.caps:
            return identity_for(nick, None)
        key = nick.lower()
        if key in self._known:
            return identity_for(nick, self._known[key])
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            self.bot.whois(nick)
        try:
            account = await asyncio.wait_for(asyncio.shield(future), WHOIS_TIMEOUT)
        except TimeoutError:
            self._pending.pop(key, None)
            account = None
        return identity_for(nick, account)
