"""Puppet events → portals and sides.

Events arrive synchronously from each owner's puppet Client (Sessions.listeners) and are
queued in lanes, each handled in order:

- one lane per conversation (keyed by the owner and the conversation's people, which
  never change): its messages, typing, joins and leaves reach the sides in the order MSN
  sent them, and a slow room (a homeserver that holds one PUT) delays only that
  conversation, not the owner's other portals;
- one lane per owner for everything tied to no conversation (session state, contact-list
  changes, presence, mail, notices), in order among themselves.

Each owner's lanes are taken by a small pool of workers (at most WORKERS_PER_OWNER tasks,
each emptying one lane at a time, so a lane is never handled by two at once); a worker
ends when no lane of its owner is waiting, and an emptied lane is forgotten. Per-lane
work is bounded: presence and personal messages are coalesced per contact (the sides read
the contact's current state, so only the latest change matters), the queue has a limit
(see OwnerQueue), and each worker yields between events so that one backlog never holds
up the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from puppets import Lists, SessionState
from puppets.conversation import Conversation
from puppets.event import contact as contact_ev
from puppets.event import mailbox
from puppets.event.conversation import (
    ConversationEvent,
    EmoticonsAnnounced,
    MessageReceived,
    NudgeReceived,
    OwnMessageFromOtherEndpoint,
    ParticipantJoined,
    ParticipantLeft,
    SwitchboardClosed,
    TypingReceived,
)
from puppets.event.offline import OfflineMessageReceived
from puppets.event.session import ChallengeAnswered, SessionStateChanged, SystemNotice
from puppets.event.transfer import (
    DisplayPictureReceived,
    FileOffered,
    LegacyInvitationRefused,
    RichContentReceived,
    TransferFinished,
)
from puppets.message import TextMessage
from puppets.textformat import TextFormat

from ..db import message as message_db
from ..db import msn_inbox
from ..db import offline as offline_db
from ..db.msn_inbox import InboxEntry
from ..db.portal import Portal, portal_key
from ..formatting import MessageKind, RichText, from_msn
from ..formatting.model import Span
from ..metrics import Metrics
from .event_ids import current_event_id
from .msn_emoticons import MsnEmoticons
from .msn_files import MsnFileRouter
from .outage import ConnectionNotice
from .owner_queue import OwnerQueue
from .sides import HELD, ContactChange, NoticeKind, OwnerNotice, PortalMessage
from .text_safety import one_line, without_controls
from .wording import plural

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger("msnbridge.router.msn")

# Lanes of one owner handled at once: a few held conversations (a room the homeserver is
# slow to take) do not hold the owner's others, and a server opening conversations without
# end does not get a task each.
WORKERS_PER_OWNER = 8

# Where an event waits: the owner (events of no conversation) or (owner, the people a
# conversation was started with).
LaneKey = str | tuple[str, frozenset[str]]


class MsnEventRouter:
    def __init__(self, router: Router, *, workers_per_owner: int = WORKERS_PER_OWNER) -> None:
        self.router = router
        self.workers_per_owner = workers_per_owner
        # Lanes with work queued or in hand: owner → its own events, (owner, people) → a
        # conversation's. A lane is in its owner's ready queue or in one worker's hands,
        # never both, so its events are handled one at a time, in order.
        self._lanes: dict[LaneKey, OwnerQueue] = {}
        self._ready: dict[str, deque[LaneKey]] = {}
        self._workers: dict[str, set[asyncio.Task[None]]] = {}
        self._switchboards: set[int] = set()  # ids of switchboards counted as open
        self._mailbox_told: set[str] = set()  # owners told their unread count this run
        self._stopping = False
        # Each MSN message is written to msn_inbox as soon as it is read (a task per
        # message, not behind the owner's queue), and removed once delivered.
        self._inbox_writes: dict[int, tuple[str, asyncio.Task[Any]]] = {}
        self._writing: set[asyncio.Task[object]] = set()
        # Offline messages' records, until the puppet's acknowledgement or their delivery.
        self._offline_writes: dict[tuple[str, str], asyncio.Task[bool]] = {}
        self.files = MsnFileRouter(router)
        self.emoticons = MsnEmoticons(router)

    def on_puppet_event(self, owner: str, event: object) -> None:
        if self._stopping:
            return
        self._count(event)
        if isinstance(event, MessageReceived):
            self._record(owner, event)
        elif isinstance(event, OfflineMessageReceived):
            event = self._record_offline(owner, event)
        key: LaneKey = owner
        if isinstance(event, ConversationEvent) and event.conversation is not None:
            key = (owner, event.conversation.key)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.put(event, Metrics.clock())  # ready or in hand: handled after the rest
            return
        lane = self._lanes[key] = OwnerQueue(owner)
        lane.put(event, Metrics.clock())
        self._ready.setdefault(owner, deque()).append(key)
        workers = self._workers.setdefault(owner, set())
        if len(workers) < self.workers_per_owner:
            task = asyncio.get_running_loop().create_task(
                self._work(owner), name=f"msn-events:{owner}"
            )
            workers.add(task)

    async def _work(self, owner: str) -> None:
        """Takes the owner's ready lanes one by one and empties each; ends when none is
        ready (no await between that check and the end, so none is missed)."""
        ready = self._ready[owner]
        try:
            while ready:
                key = ready.popleft()
                queue = self._lanes[key]
                try:
                    while (item := queue.get()) is not None:
                        event, started = item
                        try:
                            await self.handle(owner, event, started)
                        except Exception:
                            log.exception("Routing %s for %s failed", type(event).__name__, owner)
                        await asyncio.sleep(0)  # let other lanes (and the appservice) run
                finally:
                    del self._lanes[key]  # empty (or cancelled): the next event starts anew
        finally:
            workers = self._workers[owner]
            workers.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not workers and not ready:
                del self._workers[owner], self._ready[owner]

    @property
    def lanes(self) -> int:
        """Lanes with work queued or in hand."""
        return len(self._lanes)

    @property
    def workers(self) -> int:
        return sum(len(w) for w in self._workers.values())

    # --- the inbox: nothing the MSN server acknowledged is lost by a killed bridge ---

    def _record(self, owner: str, event: MessageReceived) -> None:
        conv = event.conversation
        if conv is None:
            return
        bound = self.router.portals.bound_key(conv)
        key = bound[1] if bound is not None else portal_key(self._people(owner, event))
        if not key:
            return
        stable = current_event_id.get()
        msn_id = f"msn:{stable}" if stable else f"msn:{uuid.uuid4().hex}"
        entry = InboxEntry(
            msn_id,
            owner,
            key,
            event.sender.lower(),
            event.nick or "",
            event.message.text,
            event.message.format.header(),
            event.message.context,
        )
        task = asyncio.get_running_loop().create_task(
            msn_inbox.add(self.router.db, entry), name="msn-inbox"
        )
        self._inbox_writes[id(event)] = (msn_id, task)
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _record_offline(self, owner: str, event: OfflineMessageReceived) -> InboxEntry:
        """An offline message is written to the inbox (with its offline_seen mark) and
        queued as an inbox entry: from here on it is delivered like one replayed."""
        oim_key = hashlib.sha256(f"{owner}\n{event.id}".encode()).hexdigest()[:32]
        entry = InboxEntry(
            f"oim:{oim_key}",  # the same for a message fetched twice
            owner,
            portal_key({event.sender.lower()}),  # the 1:1 portal with its sender
            event.sender.lower(),
            event.nick or event.sender,
            event.text,
            "",
            oim_id=event.id,
            sent_at=round(event.sent_at * 1000),
        )
        task = asyncio.get_running_loop().create_task(
            msn_inbox.add_offline(self.router.db, entry), name="msn-inbox"
        )
        self._inbox_writes[id(entry)] = (entry.msn_id, task)
        self._offline_writes[(owner, event.id)] = task
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return entry

    async def offline_taken(self, owner: str, events: Sequence[OfflineMessageReceived]) -> None:
        """The puppet's acknowledgement (Client.offline_ack) of offline messages it just
        emitted: returns once each is in the inbox, so the MSN server may delete them;
        raises when one is not (dropped while stopping, or the write failed)."""
        tasks = [self._offline_writes.pop((owner, e.id), None) for e in events]
        missing = sum(task is None for task in tasks)
        if missing:
            raise RuntimeError(f"{missing} offline messages were not taken")
        await asyncio.gather(*tasks)  # type: ignore[arg-type]

    async def inbox_written(self) -> None:
        """Waits until the messages read so far are in the inbox (a pool's event is
        acknowledged only then; a failed write is logged where the message is handled)."""
        if self._writing:
            await asyncio.wait(list(self._writing))

    async def _recorded(self, event: MessageReceived) -> str | None:
        """The inbox id of a message, once its record is written (None: not recorded)."""
        pending = self._inbox_writes.pop(id(event), None)
        if pending is None:
            return None
        msn_id, task = pending
        try:
            await task
        except Exception:
            log.exception("Could not record an MSN message in the inbox")
            return None
        return msn_id

    async def replay_inbox(self) -> int:
        """At start-up, before the sessions: queue the messages a killed bridge received
        but had not delivered, first in each owner's queue. Returns how many."""
        entries = await msn_inbox.get_all(self.router.db)
        for entry in entries:
            self.on_puppet_event(entry.owner, entry)
        return len(entries)

    async def _replay(self, owner: str, entry: InboxEntry, started: float) -> None:
        if entry.oim_id:
            await self._offline_message(owner, entry)
            return
        portal = await self.router.portals.get_or_create(owner, entry.portal_key.split(","))
        message = TextMessage(entry.text, TextFormat.parse(entry.format), entry.context)
        await self._deliver_text(portal, entry.sender, entry.nick, message, entry.msn_id, started)

    async def _deliver_text(
        self,
        portal: Portal,
        sender: str,
        nick: str,
        text: TextMessage,
        msn_id: str,
        started: float,
        recorded: bool = True,
        emoticons: tuple[tuple[str, str], ...] = (),
    ) -> None:
        router = self.router
        rich = without_controls(from_msn(text))
        # The inbox id is the Matrix transaction id: a delivery repeated after a kill
        # (sent, but not yet removed from the inbox) is not a second message.
        message = PortalMessage(
            sender, nick, rich, MessageKind.TEXT, txn_id=msn_id, emoticons=emoticons
        )
        for side in router.serving(portal):
            direction = f"msn_to_{side.name}"
            try:
                await router.ensure_on(side, portal)
                delivered = await side.deliver_message(portal, message)
            except Exception:
                log.exception("The %s side failed to deliver a message", side.name)
                if router.metrics is not None:
                    router.metrics.message(direction, "failed")
                continue
            if router.metrics is not None and delivered != HELD:
                router.metrics.message(direction, "delivered", Metrics.clock() - started)
            if delivered is not None and delivered != HELD and side.name == "matrix":
                link = message_db.MessageLink(delivered, portal.room_id or "", msn_id=msn_id)
                await message_db.claim(router.db, link)
        if recorded:
            await msn_inbox.remove(router.db, msn_id)

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests, shutdown)."""
        while tasks := [t for workers in self._workers.values() for t in workers]:
            await asyncio.wait(tasks)

    async def stop(self) -> None:
        self._stopping = True
        workers = [t for ws in self._workers.values() for t in ws]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=5)
            for task in pending:
                task.cancel()

    def _count(self, event: object) -> None:
        metrics = self.router.metrics
        if metrics is None:
            return
        if isinstance(event, ConversationEvent):
            sb = id(event.switchboard)
            if isinstance(event, SwitchboardClosed):
                if sb in self._switchboards:
                    self._switchboards.discard(sb)
                    metrics.switchboard_closed()
            elif sb not in self._switchboards:
                self._switchboards.add(sb)
                metrics.switchboard_opened()
        elif isinstance(event, ChallengeAnswered):
            metrics.challenge_answered()
        elif isinstance(event, SessionStateChanged):
            if event.state is SessionState.BACKING_OFF:
                metrics.reconnect()
            self.router.sessions.report_states()

    # --- routing ---

    async def handle(self, owner: str, event: object, started: float) -> None:
        if isinstance(event, InboxEntry):
            await self._replay(owner, event, started)
        elif isinstance(event, ConversationEvent):
            await self._conversation_event(owner, event, started)
        elif isinstance(event, contact_ev.PresenceChanged):
            await self._contact(owner, event.passport, ContactChange.PRESENCE)
        elif isinstance(event, DisplayPictureReceived):
            await self._picture(owner, event)
        elif isinstance(event, FileOffered | TransferFinished | LegacyInvitationRefused):
            await self.files.handle(owner, event)
        elif isinstance(event, RichContentReceived):
            await self._rich_content(owner, event)
        elif isinstance(event, contact_ev.ContactListSynced):
            await self._synced(owner)
        elif isinstance(event, contact_ev.PersonalMessageChanged):
            await self._contact(owner, event.passport, ContactChange.PSM)
        elif isinstance(event, contact_ev.AddedBy):
            name = one_line(event.nick or "")
            nick = f" ({name})" if name and name != event.passport else ""
            await self.notify(
                owner,
                NoticeKind.CONTACTS,
                f"{event.passport}{nick} added you to their contact list. Send "
                f"'accept {event.passport}' to allow them and add them back, or "
                f"'reject {event.passport}' to block them.",
            )
        elif isinstance(event, contact_ev.ContactAdded) and event.list & Lists.FL:
            await self._contact(owner, event.passport, ContactChange.ADDED)
        elif isinstance(event, contact_ev.ContactRemoved) and event.list & Lists.FL:
            await self._contact(owner, event.passport, ContactChange.REMOVED)
        elif isinstance(event, mailbox.NewMail):
            await self.notify(
                owner,
                NoticeKind.MAIL,
                f"New email from {event.sender} <{event.address}>: {event.subject}",
            )
        elif isinstance(event, mailbox.MailboxStatus):
            if event.inbox_unread and owner not in self._mailbox_told:
                self._mailbox_told.add(owner)
                await self.notify(
                    owner,
                    NoticeKind.MAIL,
                    f"You have {plural(event.inbox_unread, 'unread email')}.",
                )
        elif isinstance(event, SystemNotice):
            when = f"in {plural(event.minutes, 'minute')}" if event.minutes is not None else "soon"
            await self.notify(
                owner,
                NoticeKind.MAINTENANCE,
                f"The MSN server goes down for maintenance {when}; your session will "
                f"reconnect when it is back.",
            )
        elif isinstance(event, SessionStateChanged):
            await self._session_state(owner, event)
        elif isinstance(event, ConnectionNotice):
            await self.notify(owner, NoticeKind.CONNECTION, event.text)

    async def _offline_message(self, owner: str, entry: InboxEntry) -> None:
        """An MSNP13+ offline message: into the 1:1 portal with its sender, at its original
        time; its id is marked seen with its inbox record, so a restart never shows it
        twice, and the record is removed once it is delivered."""
        router = self.router
        recorded = True
        pending = self._inbox_writes.pop(id(entry), None)  # None: replayed at start-up
        if pending is not None:
            self._offline_writes.pop((owner, entry.oim_id), None)  # no acknowledgement came
            try:
                if not await pending[1]:
                    return  # taken before (fetched again): shown already, or being shown
            except Exception:
                # Shown anyway (the puppet keeps it on the server); marked so that its
                # next fetch does not show it twice.
                log.exception("Could not record an MSN offline message in the inbox")
                recorded = False
                try:
                    await offline_db.mark(router.db, owner, entry.oim_id)
                except Exception:
                    log.exception("Could not mark an MSN offline message seen")
        portal = await router.portals.get_or_create(owner, entry.portal_key.split(","))
        text = entry.text.replace("\r\n", "\n")
        rich = without_controls(RichText([Span(text)] if text else [], MessageKind.TEXT))
        # The inbox id is the Matrix transaction id, as for a live message.
        message = PortalMessage(
            entry.sender,
            entry.nick,
            rich,
            MessageKind.TEXT,
            sent_at=entry.sent_at / 1000,
            txn_id=entry.msn_id,
        )
        for side in router.serving(portal):
            try:
                await router.ensure_on(side, portal)
                await side.deliver_message(portal, message)
            except Exception:
                log.exception("The %s side failed to deliver an offline message", side.name)
        if recorded:
            await msn_inbox.remove(router.db, entry.msn_id)

    async def _session_state(self, owner: str, event: SessionStateChanged) -> None:
        if event.state is not SessionState.STOPPED or event.reason in (None, "stopped"):
            return
        await self.router.close_detached(owner)
        client = self.router.sessions.get(owner)
        if client is None or owner in self.router.sessions.logging_in:
            return  # a login that failed (answered and counted by `login`) or a logout
        error = client.error if client is not None else None
        if error is not None and type(error).__name__ == "SignedOutElsewhere":
            kind, text = (
                NoticeKind.SIGNED_OUT,
                "Your MSN account signed in from another place (OUT OTH), so the bridge "
                "signed out and will not reconnect. Send 'login' to log in again.",
            )
        elif error is not None and type(error).__name__ == "AuthenticationError":
            kind, text = (
                NoticeKind.LOGIN_FAILED,
                "Logging back in to MSN failed: wrong passport or password. "
                "Send 'login <passport> <password>' to log in again.",
            )
        else:
            kind, text = (
                NoticeKind.SIGNED_OUT,
                f"Your MSN session stopped: {event.reason}. Send 'login' to log in again.",
            )
        if self.router.metrics is not None and kind is NoticeKind.LOGIN_FAILED:
            self.router.metrics.login_failed("auth")
        await self.notify(owner, kind, text)

    async def notify(self, owner: str, kind: NoticeKind, text: str) -> None:
        notice = OwnerNotice(kind, text)
        for side in self.router.sides:
            try:
                await side.owner_notice(owner, notice)
            except Exception:
                log.exception("The %s side failed to deliver a notice", side.name)

    async def _synced(self, owner: str) -> None:
        # After a login's SYN every contact is known (offline ones get no ILN): let the
        # sides show all of them (ghost names), not only those who come online.
        client = self.router.sessions.get(owner)
        if client is None:
            return
        for contact in client.contacts.on_list(Lists.FL):
            await self._contact(owner, contact.passport, ContactChange.NICK)

    async def _contact(self, owner: str, passport: str, change: ContactChange) -> None:
        client = self.router.sessions.get(owner)
        contact = client.contacts.get(passport) if client is not None else None
        if contact is None:
            return
        for side in self.router.sides:
            try:
                await side.contact_changed(owner, contact, change)
            except Exception:
                log.exception("The %s side failed on a contact change", side.name)

    async def _picture(self, owner: str, event: DisplayPictureReceived) -> None:
        for side in self.router.sides:
            handler = getattr(side, "contact_picture", None)  # sides showing pictures
            if handler is None:
                continue
            try:
                await handler(owner, event.passport, event.msnobject.sha1d, event.data)
            except Exception:
                log.exception("The %s side failed on a display picture", side.name)

    async def _rich_content(self, owner: str, event: RichContentReceived) -> None:
        """Winks, voice clips and ink: said in words, as an action (they are not carried)."""
        portal = await self.router.portals.get_or_create(owner, [event.sender])
        client = self.router.sessions.get(owner)
        contact = client.contacts.get(event.sender) if client is not None else None
        nick = contact.nick if contact is not None and contact.nick else event.sender
        if await self.files.voice_clip(owner, portal, event, nick):
            return  # it came whole: posted as an audio file
        article = "an" if event.kind[0] in "aeiou" else "a"
        text = f"sent {article} {event.kind} (not shown here)"
        message = PortalMessage(
            event.sender.lower(), nick, RichText.from_plain(text, MessageKind.EMOTE),
            MessageKind.EMOTE,
        )  # fmt: skip
        for side in self.router.serving(portal):
            await self.router.ensure_on(side, portal)
            await _quietly(side.name, side.deliver_message(portal, message))

    # --- conversations ---

    def _people(self, owner: str, event: ConversationEvent) -> set[str]:
        """Who else was in the conversation when the event was read: the lane handles it
        later, when a 1:1 chat may have become a group (a message said before the third
        person joined stays in the 1:1 portal). The live list if the event has none."""
        client = self.router.sessions.get(owner)
        me = client.config.passport.lower() if client is not None else ""
        conv = event.conversation
        people = event.people or (conv.participants if conv is not None else ())
        return {p.lower() for p in people if p.lower() != me}

    async def portal_of(
        self, owner: str, event: ConversationEvent, *, create: bool
    ) -> Portal | None:
        """The portal of an event's conversation: the one it is bound to, else the one with
        its people at the time (created when ``create``)."""
        conv = event.conversation
        if conv is None:
            return None
        store = self.router.portals
        bound = store.bound_key(conv)
        if bound is not None:
            portal = await store.get(owner, bound[1].split(","))
            if portal is not None:
                return portal
        people = self._people(owner, event)
        if not people:
            return None
        portal = (
            await store.get_or_create(owner, people) if create else await store.get(owner, people)
        )
        if portal is not None:
            store.bind(portal, conv)
        return portal

    async def _conversation_event(
        self, owner: str, event: ConversationEvent, started: float
    ) -> None:
        conv = event.conversation
        if conv is None:
            return
        recorded = await self._recorded(event) if isinstance(event, MessageReceived) else None
        if isinstance(event, ParticipantJoined):
            await self._joined(owner, conv, event)
            return
        if isinstance(event, EmoticonsAnnounced):
            await self.emoticons.announced(owner, event)
            return
        create = isinstance(event, MessageReceived | NudgeReceived | OwnMessageFromOtherEndpoint)
        portal = await self.portal_of(owner, event, create=create)
        if portal is None:
            if recorded is not None:
                await msn_inbox.remove(self.router.db, recorded)
            return
        router = self.router
        if isinstance(event, MessageReceived):
            msn_id = recorded or f"msn:{uuid.uuid4().hex}"
            await self._deliver_text(
                portal,
                event.sender.lower(),
                event.nick,
                event.message,
                msn_id,
                started,
                recorded=recorded is not None,
                emoticons=self.emoticons.take(owner, event.sender),
            )
        elif isinstance(event, OwnMessageFromOtherEndpoint):
            # The owner wrote from their own Messenger (MPOP): shown as theirs (a side that
            # can speak as the owner does), else marked. Recorded like any message from MSN.
            name = router.own_name(owner)
            rich = without_controls(from_msn(event.message))
            message = PortalMessage(
                None,
                name,
                rich,
                MessageKind.TEXT,
                "msn",
                f"{name} (from another Messenger)",
                own_other_endpoint=True,
            )
            msn_id = f"msn:{uuid.uuid4().hex}"
            for side in router.serving(portal):
                try:
                    await router.ensure_on(side, portal)
                    delivered = await side.deliver_message(portal, message)
                except Exception:
                    log.exception("The %s side failed to deliver an own message", side.name)
                    continue
                if delivered is not None and delivered != HELD and side.name == "matrix":
                    link = message_db.MessageLink(delivered, portal.room_id or "", msn_id=msn_id)
                    await message_db.claim(router.db, link)
        elif isinstance(event, TypingReceived):
            for side in router.serving(portal):
                await _quietly(side.name, side.deliver_typing(portal, event.sender.lower()))
        elif isinstance(event, NudgeReceived):
            client = router.sessions.get(owner)
            contact = client.contacts.get(event.sender) if client is not None else None
            nick = one_line(contact.nick if contact is not None and contact.nick else "")
            nick = nick or event.sender
            for side in router.serving(portal):
                await router.ensure_on(side, portal)
                await _quietly(side.name, side.deliver_nudge(portal, event.sender.lower(), nick))
        elif isinstance(event, ParticipantLeft) and not portal.is_direct:
            for side in router.serving(portal):
                await _quietly(side.name, side.participant_left(portal, event.passport.lower()))

    async def _joined(self, owner: str, conv: Conversation, event: ParticipantJoined) -> None:
        """A third person joining a 1:1 chat makes it a group portal (a new one, keyed by
        everyone); the 1:1 portal stays for later 1:1 talk."""
        router = self.router
        people = self._people(owner, event)
        store = router.portals
        bound = store.bound_key(conv)
        portal = await self.portal_of(owner, event, create=False) if bound is not None else None
        if len(people) < 2 and (portal is None or portal.is_direct):
            return  # the other person of a 1:1 chat answering our call
        if portal is None or portal.is_direct:
            client = router.sessions.get(owner)
            if client is not None and portal is not None:
                router.detach(owner, client, conv)
            direct, portal = portal, await store.get_or_create(owner, people)
            store.bind(portal, conv)
            log.info("A conversation of %s became a group chat of %d", owner, len(people))
            for side in router.serving(portal):
                await _quietly(side.name, router.ensure_on(side, portal))
                for passport in sorted(people):
                    await _quietly(side.name, side.participant_joined(portal, passport, ""))
            for side in router.serving(direct) if direct is not None else []:
                # Optional side hook: point the 1:1 room/channel at the group's.
                grew = getattr(side, "conversation_grew", None)
                if grew is not None:
                    await _quietly(side.name, grew(direct, portal))
            return
        for side in router.serving(portal):
            await _quietly(
                side.name,
                side.participant_joined(portal, event.passport.lower(), one_line(event.nick)),
            )


async def _quietly(side_name: str, call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except Exception:
        log.exception("The %s side failed on a conversation event", side_name)
