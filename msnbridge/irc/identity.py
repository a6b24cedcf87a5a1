"""Who an IRC user is, for the bridge: the owner of an MSN login made from IRC.

Where the network has services, the identity is the services account the server vouches
for — from the ``account`` message tag (IRCv3 account-tag), account-notify, or WHOIS
numeric 330 — and stays with that account whatever nick its holder uses:
``irc:account:<account>``.

On a network without services (such as a bare ngIRCd) nothing vouches for anyone, and the
identity is the nick: ``irc:nick:<nick>``. Anyone can take a nick once its holder
disconnects, so a bare nick owns its stored MSN login only on an IRC connection that has
proven itself (:mod:`.proof`), unless ``irc.trust_bare_nicks`` says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
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
    """Finds the account behind a nick: tag first, then what account-notify or a WHOIS
    told us. What is cached is used only while the nick shares a channel with the bot:
    only then does the bot see the QUIT or NICK after which the nick is someone else."""

    def __init__(self, bot: BotConnection, shares: Callable[[str], bool] = lambda _: True) -> None:
        self.bot = bot
        self.shares = shares
        self._known: dict[str, str | None] = {}  # lower nick → account (None: none)
        self._pending: dict[str, asyncio.Future[WhoisAccount]] = {}

    def on_event(self, event: object) -> None:
        if isinstance(event, AccountChanged):
            self._known[event.nick.lower()] = event.account
        elif isinstance(event, WhoisAccount):
            self._known[event.nick.lower()] = event.account
            future = self._pending.pop(event.nick.lower(), None)
            if future is not None and not future.done():
                future.set_result(event)

    def learn(self, nick: str, account: str | None) -> None:
        """extended-join told the account (``*`` there: none) of a nick joining."""
        self._known[nick.lower()] = None if account in (None, "", "*") else account

    def forget(self, nick: str) -> None:
        self._known.pop(nick.lower(), None)

    def cached(self, nick: str) -> tuple[bool, str | None]:
        """(True, account) when what is known of the nick can be trusted now."""
        key = nick.lower()
        if key in self._known and self.shares(nick):
            return True, self._known[key]
        return False, None

    async def whois(self, nick: str) -> WhoisAccount | None:
        """A fresh WHOIS (one at a time per nick); None when the server did not answer."""
        key = nick.lower()
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            self.bot.whois(nick)
        try:
            return await asyncio.wait_for(asyncio.shield(future), WHOIS_TIMEOUT)
        except TimeoutError:
            self._pending.pop(key, None)
            return None

    async def resolve(self, nick: str, tags: Mapping[str, str | None]) -> Identity:
        if "account" in tags:  # account-tag: present exactly when logged in
            return identity_for(nick, tags["account"] or None)
        if "account-tag" in self.bot.caps:
            return identity_for(nick, None)
        cached, account = self.cached(nick)
        if cached:
            return identity_for(nick, account)
        answer = await self.whois(nick)
        return identity_for(nick, answer.account if answer is not None else None)
