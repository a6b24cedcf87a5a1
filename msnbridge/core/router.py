"""The Router: which portal, which people, which sides — in both directions.

Sides call ``send``/``send_typing``/``send_nudge``/``open_portal``/``invite`` to act on a
portal; puppet events reach the sides through ``msn_events.MsnEventRouter`` (which the
Router owns). A side never talks to another side: a message from one side is fanned out
to every other side of the same portal here.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import replace

from mautrix.util.async_db import Database

from puppets import Client, SessionState
from puppets.conversation import Conversation
from puppets.event.conversation import DeliveryResult, DeliveryStatus

from ..db import message as message_db
from ..db.portal import Portal
from ..formatting import MessageKind, RichText, as_emote_text, to_msn
from ..metrics import Metrics
from ..pools.remote_client import stable_command_id
from .portal import PortalStore
from .sessions import Sessions
from .sides import PortalMessage, Side
from .text_safety import one_line, without_controls

log = logging.getLogger("msnbridge.router")

DUPLICATE = "duplicate: this message was sent before"
_RESULT_LABELS = {
    DeliveryStatus.ACKED: "delivered",
    DeliveryStatus.SENT: "delivered",
    DeliveryStatus.SENT_AS_OIM: "delivered",  # stored for the contact (MSNP13+ OIM)
    DeliveryStatus.OFFLINE: "offline",
    DeliveryStatus.NAKED: "refused",
    DeliveryStatus.NO_ANSWER: "failed",
    DeliveryStatus.FAILED: "failed",
}


_RECONNECTING = (SessionState.CONNECTING, SessionState.BACKING_OFF)


class NotConnected(Exception):
    """The owner has no usable MSN session; the message says why, for the user."""


def describe_result(result: DeliveryResult) -> str:
    """A delivery failure in words: "offline: bob@example.com is offline"."""
    reason = f": {result.reason}" if result.reason else ""
    return f"{result.status.value}{reason}"


def result_label(result: DeliveryResult) -> str:
    return _RESULT_LABELS.get(result.status, "failed")


class Router:
    def __init__(
        self,
        sessions: Sessions,
        db: Database,
        *,
        metrics: Metrics | None = None,
        relay_format: str = "<{displayname}> {message}",
        relay_default: bool = False,
        relay_allowed: bool = True,
    ) -> None:
        from .msn_events import MsnEventRouter  # avoids an import cycle (it uses Router)

        self.sessions = sessions
        self.db = db
        self.metrics = metrics
        self.relay_format = relay_format
        self.portals = PortalStore(db, relay_default=relay_default, relay_allowed=relay_allowed)
        self.sides: list[Side] = []
        # Conversations split off a client when a 1:1 chat became a group (see _private).
        self._detached: dict[str, list[Conversation]] = {}
        self._interrupted: list[message_db.MessageLink] = []  # see note_interrupted
        self.events = MsnEventRouter(self)
        sessions.listeners.append(self.events.on_puppet_event)
        sessions.offline_ack = self.events.offline_taken

    # --- sides ---

    def add_side(self, side: Side) -> None:
        self.sides.append(side)

    def side(self, name: str) -> Side | None:
        return next((s for s in self.sides if s.name == name), None)

    def serving(self, portal: Portal, *, exclude: str | None = None) -> list[Side]:
        return [s for s in self.sides if s.name != exclude and s.serves(portal)]

    async def ensure_on(self, side: Side, portal: Portal) -> None:
        """Let the side create the portal's room/channel (once, under the portal's lock)."""
        async with self.portals.lock(portal.owner, portal.key):
            before = (portal.room_id, portal.irc_channel)
            await side.ensure_portal(portal)
            if (portal.room_id, portal.irc_channel) != before:
                await self.portals.save(portal)
                await self.update_portal_metrics()

    async def update_portal_metrics(self) -> None:
        if self.metrics is not None:
            for side, n in (await self.portals.count()).items():
                self.metrics.set_portals(side, n)

    async def open_portal(self, owner: str, participants: list[str]) -> Portal:
        """The portal with these people, with a room/channel on every side serving it."""
        portal = await self.portals.get_or_create(owner, participants)
        for side in self.serving(portal):
            await self.ensure_on(side, portal)
        return portal

    # --- the owner's session ---

    def client(self, owner: str, *, reconnecting_ok: bool = False) -> Client:
        """The owner's online session. ``reconnecting_ok``: a session that is reconnecting
        will do too (a conversation's messages wait for it, up to offline_send_timeout)."""
        client = self.sessions.get(owner)
        if client is None:
            raise NotConnected(self.sessions.why_no_session(owner))
        waiting = reconnecting_ok and client.state in _RECONNECTING
        if client.state is not SessionState.ONLINE and not waiting:
            raise NotConnected(f"your MSN session is {client.state.value}")
        return client

    async def _wait_restored(self, owner: str) -> None:
        """A message for a session being restored at start-up waits for it, as long as for
        a reconnecting session (msn.offline_send_timeout)."""
        await self.sessions.wait_restored(owner, self.sessions.offline_send_timeout)

    def conversation_for(self, portal: Portal) -> Conversation:
        """The live conversation carrying the portal, opened on demand."""
        conv = self.portals.conversation(portal)
        if conv is not None:
            return conv
        client = self.client(portal.owner, reconnecting_ok=True)
        conv = client.conversation(portal.participants)
        bound = self.portals.bound_key(conv)
        if bound is not None and bound != (portal.owner, portal.key):
            # The client's conversation with these people grew into a group chat: it
            # belongs to the group portal now; this portal gets a conversation of its own.
            self.detach(portal.owner, client, conv)
            conv = client.conversation(portal.participants)
        self.portals.bind(portal, conv)
        return conv

    def detach(self, owner: str, client: Client, conv: Conversation) -> None:
        """Make ``client.conversation(conv.key)`` hand out a fresh conversation, so a 1:1
        room never talks into a group switchboard."""
        client.detach(conv)
        self._detached.setdefault(owner, []).append(conv)

    async def close_detached(self, owner: str | None = None) -> None:
        owners = [owner] if owner is not None else list(self._detached)
        for who in owners:
            for conv in self._detached.pop(who, []):
                with contextlib.suppress(Exception):
                    await conv.close()

    def own_name(self, owner: str) -> str:
        client = self.sessions.get(owner)
        if client is None:
            return owner
        return one_line(client.contacts.own_nick or "") or client.config.passport

    # --- from a side to MSN (and the other sides) ---

    def relayed(
        self, rich: RichText, displayname: str, relay_format: str | None = None
    ) -> RichText:
        """``rich`` prefixed (and suffixed) as ``relay_format`` (default: bridge.relay.format)
        says."""
        relay_format = relay_format or self.relay_format
        displayname = one_line(displayname)
        before, marker, after = relay_format.partition("{message}")
        if not marker:  # a format without {message}: the text goes after it
            before, after = relay_format + " ", ""
        prefix = before.replace("{displayname}", displayname)
        suffix = after.replace("{displayname}", displayname)
        # The prefix takes the style the whole message shares, so an all-bold message
        # stays one bold MSN message instead of growing *markers*.
        shared = replace(rich.common_style(), code=False, link=None)
        spans = [shared.with_text(prefix), *rich.spans, shared.with_text(suffix)]
        return RichText([s for s in spans if s.text], rich.kind)

    async def send(
        self,
        portal: Portal,
        origin_side: str,
        origin_id: str | None,
        sender_display: str | None,
        rich: RichText,
        kind: MessageKind = MessageKind.TEXT,
        *,
        started: float | None = None,
        relay_format: str | None = None,
    ) -> DeliveryResult:
        """Send a message written on ``origin_side`` into the portal's MSN conversation and
        to the portal's other sides. ``sender_display`` None = the owner wrote it, else the
        name of someone relayed through the owner's session: the text gets ``relay_format``
        (default bridge.relay.format) and the MSN message a ``P4-Context`` header with the
        name (MSN clients show "<name> says"). A failure is also reported to the origin
        side (``Side.delivery_failed``). ``started`` = Metrics.clock() when the message was
        read (latency); ``origin_id`` dedupes retries (Matrix event ids)."""
        started = Metrics.clock() if started is None else started
        rich = without_controls(rich)
        if sender_display is not None:  # it goes into the text and a header: one line
            sender_display = one_line(sender_display) or "someone"
        msn_id = f"msn:{uuid.uuid4().hex}"
        claim: _Claim | None = None
        if origin_id is not None and origin_side == "matrix":
            if await message_db.get(self.db, origin_id) is not None:
                log.debug("Not sending %s again: it was sent before", origin_id)
                return DeliveryResult(DeliveryStatus.SENT, DUPLICATE)
            link = message_db.MessageLink(
                origin_id, portal.room_id or "", message_db.PENDING + msn_id
            )
            claim = _Claim(self.db, link)
        name = sender_display if sender_display is not None else self.own_name(portal.owner)
        outgoing = RichText(list(rich.spans), kind)
        if kind is MessageKind.EMOTE:
            outgoing = as_emote_text(outgoing, name)
        elif sender_display is not None:
            outgoing = self.relayed(outgoing, sender_display, relay_format)
        text, fmt = to_msn(outgoing)
        headers = [("P4-Context", sender_display)] if sender_display is not None else None
        await self._wait_restored(portal.owner)
        try:
            conv = self.conversation_for(portal)
        except NotConnected as e:
            result = DeliveryResult(DeliveryStatus.FAILED, str(e))
        else:
            hook = claim.before_write if claim is not None else None
            # A pool recognises a replayed Matrix event by this id and sends it once.
            sent_as = f"send:{origin_id}" if claim is not None else None
            with stable_command_id(sent_as) if sent_as else contextlib.nullcontext():
                result = await conv.send_text(text, fmt, extra_headers=headers, before_write=hook)
        if claim is not None:
            if claim.refused:
                log.debug("Not sending %s again: it was sent before", origin_id)
                return DeliveryResult(DeliveryStatus.SENT, DUPLICATE)
            await claim.settle(msn_id if result.ok else None)
        if self.metrics is not None:
            self.metrics.message(
                f"{origin_side}_to_msn", result_label(result), Metrics.clock() - started
            )
        if result.ok:
            message = PortalMessage(
                None, name, RichText(list(rich.spans), kind), kind, origin_side, sender_display
            )
            await self._fan_out(portal, message, origin_side, origin_id, msn_id, started)
            if result.status is DeliveryStatus.SENT_AS_OIM:
                side = self.side(origin_side)
                note = getattr(side, "delivery_note", None)
                if note is not None:
                    with _logged(side, "offline-message note"):
                        await note(portal, origin_id, rich.plain(), result)
        else:
            await self._report_failure(portal, origin_side, origin_id, rich.plain(), result)
        return result

    async def send_nudge(
        self, portal: Portal, origin_side: str, origin_id: str | None = None
    ) -> DeliveryResult:
        await self._wait_restored(portal.owner)
        try:
            result = await self.conversation_for(portal).send_nudge()
        except NotConnected as e:
            result = DeliveryResult(DeliveryStatus.FAILED, str(e))
        if result.ok:
            for side in self.serving(portal, exclude=origin_side):
                with _logged(side, "nudge"):
                    await side.deliver_nudge(portal, "", self.own_name(portal.owner))
        else:
            await self._report_failure(portal, origin_side, origin_id, "(nudge)", result)
        return result

    async def send_typing(self, portal: Portal) -> None:
        """One typing notice; only on an open switchboard (MSN has no "stopped typing")."""
        conv = self.portals.conversation(portal)
        if conv is not None:
            await conv.send_typing()

    async def invite(self, portal: Portal, passport: str) -> str:
        """Invite another contact into the portal's conversation; returns what happened."""
        passport = passport.strip().lower()
        conv = self.conversation_for(portal)
        sb = conv.switchboard
        if sb is None:
            conv.participants.add(passport)
            return f"{passport} will be invited when the conversation next opens"
        await sb.invite(passport)
        return f"Invited {passport}; the conversation becomes a group chat when they join"

    async def _fan_out(
        self,
        portal: Portal,
        message: PortalMessage,
        origin_side: str,
        origin_id: str | None,
        msn_id: str,
        started: float,
    ) -> None:
        for side in self.serving(portal, exclude=origin_side):
            with _logged(side, "message"):
                await self.ensure_on(side, portal)
                delivered = await side.deliver_message(portal, message)
                if delivered is not None and side.name == "matrix":
                    irc_id = origin_id if origin_side == "irc" else None
                    link = message_db.MessageLink(
                        delivered, portal.room_id or "", msn_id=msn_id, irc_id=irc_id
                    )
                    await message_db.claim(self.db, link)

    async def _report_failure(
        self,
        portal: Portal,
        origin_side: str,
        origin_id: str | None,
        text: str,
        result: DeliveryResult,
    ) -> None:
        log.info("A message in a portal of %s was not delivered: %s", portal.owner, result)
        side = self.side(origin_side)
        if side is not None:
            with _logged(side, "failure report"):
                await side.delivery_failed(portal, origin_id, text, result)

    async def note_interrupted(self) -> None:
        """At start-up, before any event is handled: the messages a killed bridge was
        sending when it died. Read first, so that a message being sent by this run is
        never taken for one of them."""
        self._interrupted = await message_db.get_pending(self.db)

    async def report_interrupted(self) -> int:
        """Report the messages noted by note_interrupted (whether MSN got them cannot be
        known). Returns how many."""
        interrupted, self._interrupted = self._interrupted, []
        result = DeliveryResult(
            DeliveryStatus.FAILED, "the bridge stopped while sending it; it may not have arrived"
        )
        for link in interrupted:
            link.msn_id = None
            await message_db.update(self.db, link)
            portal = await self.portals.by_room(link.room_id)
            if portal is not None:
                await self._report_failure(
                    portal, "matrix", link.event_id, "(this message)", result
                )
        return len(interrupted)

    async def stop(self) -> None:
        await self.events.stop()
        await self.close_detached()


class _Claim:
    """A Matrix message's message_map row, written as pending just before its first byte
    goes to MSN (Conversation's before_write hook). A bridge killed before that point
    left nothing: the event, still in matrix_inbox, is sent at the next start. Killed
    after it, the row is still pending: report_interrupted says it may not have arrived
    (never sent twice: MSN has no way to tell a repeat)."""

    def __init__(self, db: Database, link: message_db.MessageLink) -> None:
        self.db = db
        self.link = link
        self.claimed = False
        self.refused = False  # the same event got there first (a repeated transaction)

    async def before_write(self) -> bool:
        self.claimed = await message_db.claim(self.db, self.link)
        self.refused = not self.claimed
        return self.claimed

    async def settle(self, msn_id: str | None) -> None:
        """The outcome: the MSN id once delivered, None when it failed."""
        self.link.msn_id = msn_id
        if self.claimed:
            await message_db.update(self.db, self.link)
        else:  # nothing was written: recorded as failed all the same, so a retry is not sent
            await message_db.claim(self.db, self.link)


@contextlib.contextmanager
def _logged(side: Side, what: str):  # type: ignore[no-untyped-def]
    """One side failing must not keep the others from their share of the event."""
    try:
        yield
    except Exception:
        log.exception("The %s side failed to handle a %s", side.name, what)
