"""The contact-list channel of a bridged user: each MSN contact a nick there.

Online (NLN) contacts are voiced; AWY/BSY/BRB/PHN/LUN/IDL are devoiced and marked
``AWAY :<state>: <personal message>``. Offline contacts are ``AWAY :Offline`` or quit
after a debounce (``irc.offline.style``), so a contact flapping on and off does not make
join/part noise. Contacts the bot relays (no connection of their own) are announced
with NOTICEs instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from puppets import Contact

from ..core.text_safety import one_line
from .bot import BotConnection
from .options import IRCOptions, OfflineStyle
from .puppets import Puppet, PuppetManager

STATE_NAMES = {
    "NLN": "Online",
    "AWY": "Away",
    "BSY": "Busy",
    "BRB": "Be right back",
    "PHN": "On the phone",
    "LUN": "Out to lunch",
    "IDL": "Idle",
    "HDN": "Offline",
    "FLN": "Offline",
}


def _name(contact: Contact) -> str:
    """The contact's nick as one line (text_safety.one_line), else the passport."""
    return one_line(contact.nick or "") or contact.passport


def away_text(contact: Contact) -> str | None:
    """None while available; else what AWAY says."""
    if contact.status == "NLN":
        return None
    state = STATE_NAMES.get(contact.status, contact.status)
    if not contact.online:
        return "Offline"
    return f"{state}: {contact.psm}" if contact.psm else state


class ContactListChannels:
    def __init__(
        self,
        options: IRCOptions,
        bot: BotConnection,
        puppets: PuppetManager,
        channel_of: Callable[[str], str | None],
        announce: Callable[[str, str], None],
    ) -> None:
        self.options = options
        self.bot = bot
        self.puppets = puppets
        self.channel_of = channel_of  # owner → their contact-list channel (None: not IRC)
        self.announce = announce  # (channel, text): a NOTICE once the owner is there
        # (channel lower, passport) → the contact's last shown status, for voice and notices.
        self._shown: dict[tuple[str, str], str] = {}
        self._announced: dict[tuple[str, str], str] = {}  # status last said by NOTICE
        self._quits: dict[str, asyncio.TimerHandle] = {}

    async def update(self, owner: str, contact: Contact) -> None:
        channel = self.channel_of(owner)
        if channel is None:
            return
        passport = contact.passport.lower()
        shown_key = (channel.lower(), passport)
        puppet = self.puppets.puppets.get(passport)
        if contact.online:
            self._cancel_quit(passport)
            puppet = await self.puppets.ensure(passport, contact.nick or passport)
            if contact.nick and contact.nick != puppet.msn_nick:
                await self.puppets.rename(puppet, contact.nick)
            self.puppets.want_channel(puppet, channel)
            self.puppets.set_away(puppet, away_text(contact))
        elif puppet is not None and puppet.conn is not None:
            if self.options.offline_style is OfflineStyle.QUIT:
                self._schedule_quit(passport)
            else:
                self.puppets.set_away(puppet, "Offline")
        self._shown[shown_key] = contact.status
        if puppet is None:
            return
        if puppet.in_channel(channel):
            self.show(puppet, channel)
        elif puppet.relayed or puppet.conn is None:
            # Two updates may run at once (login sync and presence events): announce each
            # status once, decided without awaiting in between.
            said = self._announced.get(shown_key)
            if said != contact.status and (said is not None or contact.online):
                self._announced[shown_key] = contact.status
                state = STATE_NAMES.get(contact.status, contact.status)
                psm = f" ({contact.psm})" if contact.psm and contact.online else ""
                self.announce(channel, f"{_name(contact)} is {state}{psm}")

    def show(self, puppet: Puppet, channel: str) -> None:
        """Voice or devoice a puppet present in the channel, from its last status."""
        status = self._shown.get((channel.lower(), puppet.passport))
        if status is None:
            return
        sign = "+v" if status == "NLN" else "-v"
        self.bot.mode(channel, sign, puppet.irc_nick)

    def relayed(self, puppet: Puppet, contacts: dict[str, Contact]) -> None:
        """A puppet lost its connection for good: announce its state by NOTICE instead.
        ``contacts``: owner → that owner's live Contact for the puppet."""
        for owner, contact in contacts.items():
            channel = self.channel_of(owner)
            key = (channel.lower(), puppet.passport) if channel is not None else None
            if key is not None and contact.online and self._announced.get(key) != contact.status:
                self._announced[key] = contact.status
                state = STATE_NAMES.get(contact.status, contact.status)
                psm = f" ({contact.psm})" if contact.psm else ""
                self.announce(channel, f"{_name(contact)} is {state}{psm}")

    def is_contact_list(self, channel: str) -> bool:
        return any(key[0] == channel.lower() for key in self._shown)

    def _schedule_quit(self, passport: str) -> None:
        if passport in self._quits:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._quits.pop(passport, None)
            self.puppets.spawn(self.puppets.quit(passport, "Offline"))

        self._quits[passport] = loop.call_later(self.options.quit_debounce, fire)

    def _cancel_quit(self, passport: str) -> None:
        handle = self._quits.pop(passport, None)
        if handle is not None:
            handle.cancel()

    def close(self) -> None:
        for handle in self._quits.values():
            with contextlib.suppress(Exception):
                handle.cancel()
        self._quits.clear()
