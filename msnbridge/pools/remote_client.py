"""The core's stand-in for a session a pool holds: `RemoteClient` quacks like
`puppets.Client` for everything msnbridge does with one (state, contacts, conversations,
list and profile commands, listeners), mirroring the pool's session from its events and
carrying each call to the pool as a command (see ``executor`` for the wire).

One `RemoteConversation` object stands for one pool-side conversation for as long as it
lives (portals are bound to conversation objects), and likewise `RemoteSwitchboard`.
Files, emoticon and voice-clip data and the owner's picture go through the link's
transfers (``remote_transfers``); over a link without them they fail with a worded
`NotSupported`, which the core already reports to the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from puppets.contacts import ContactList
from puppets.errors import NotSupported, PuppetError
from puppets.event import contact as contact_ev
from puppets.event.conversation import (
    ConversationEvent,
    DeliveryResult,
    DeliveryStatus,
)
from puppets.event.session import (
    OwnEndpointsChanged,
    SessionState,
    SessionStateChanged,
)
from puppets.msnobject import sha1d
from puppets.switchboard import normalize_passport
from puppets.textformat import TextFormat

from . import codec
from .link import CommandFailed, CoreLink, Envelope
from .remote_transfers import RemoteIncomingFile, RemoteOutgoingFile, RemoteP2P
from .transfers import TransferCancelled, Transfers

log = logging.getLogger("msnbridge.pools.remote")

__all__ = [
    "RemoteClient",
    "RemoteCommandError",
    "RemoteConfig",
    "RemoteConversation",
    "RemoteSwitchboard",
    "stable_command_id",
]

NOT_CARRIED = "not carried through the bridge's connection pools yet"
SEEN_EVENTS = 4096  # event ids remembered per session, to apply a redelivery once

Listener = Callable[[object], None]
# Events that carry the contact as the pool's model has it after the event.
_HAS_PASSPORT = (
    contact_ev.PresenceChanged,
    contact_ev.PersonalMessageChanged,
    contact_ev.ContactAdded,
    contact_ev.ContactRemoved,
    contact_ev.AddedBy,
    contact_ev.RemovedBy,
)


class RemoteCommandError(CommandFailed, PuppetError):
    """A command the pool answered with a failure (worded for the user), or did not
    answer in time. A PuppetError, so the core's handlers catch it where they catch the
    Client's own failures."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out  # no answer: it may or may not have been done


# --- stable command ids ---


class _IdSource:
    __slots__ = ("base", "count")

    def __init__(self, base: str) -> None:
        self.base = base
        self.count = 0


_stable_id: contextvars.ContextVar[_IdSource | None] = contextvars.ContextVar(
    "msnbridge_pools_stable_id", default=None
)


@contextlib.contextmanager
def stable_command_id(base: str) -> Iterator[None]:
    """Sends made inside get the ids ``<base>:1``, ``<base>:2``… (e.g. ``base =
    "send:<matrix event id>"``), so a send repeated after a core restart is recognised by
    the pool and not done twice."""
    token = _stable_id.set(_IdSource(base))
    try:
        yield
    finally:
        _stable_id.reset(token)


def _send_id() -> str:
    source = _stable_id.get()
    if source is None:
        return f"send:{uuid.uuid4().hex}"
    source.count += 1
    return f"{source.base}:{source.count}"


# --- the proxies ---


@dataclass(slots=True)
class RemoteConfig:
    """What the core reads of a client's config."""

    passport: str
    machine_guid: str | None = None


class RemoteSwitchboard:
    """A switchboard of a pool-side conversation (events carry it; ``invite`` works)."""

    def __init__(self, sid: str | None, conversation: RemoteConversation | None) -> None:
        self.id = sid
        self.conversation = conversation
        self.participants: set[str] = set()
        self.closed = False

    async def invite(self, passport: str, timeout: float | None = None) -> None:
        if self.conversation is None:
            raise NotSupported("this switchboard belongs to no conversation")
        await self.conversation._command("invite", passport=passport)

    def __repr__(self) -> str:
        return f"<RemoteSwitchboard {self.id} {sorted(self.participants)}>"


class _Participants(set[str]):
    """The conversation's people; ``add`` from the core also tells the pool (the Router
    adds someone to be invited when the conversation next opens)."""

    def __init__(self, conversation: RemoteConversation, people: Iterable[str]) -> None:
        super().__init__(people)
        self._conversation = conversation

    def add(self, passport: str) -> None:
        if passport not in self:
            super().add(passport)
            self._conversation._tell("add_participant", passport=passport)

    def mirror(self, people: Iterable[str]) -> None:
        super().clear()
        super().update(people)


class RemoteConversation:
    """Stands for one pool-side conversation (``id``; None until the pool named it)."""

    def __init__(self, client: RemoteClient, key: Iterable[str], cid: str | None = None) -> None:
        self.client = client
        self.key: frozenset[str] = frozenset(normalize_passport(p) for p in key if p.strip())
        if not self.key:
            raise ValueError("a conversation needs at least one participant")
        self.id = cid
        self.participants: set[str] = _Participants(self, self.key)
        self._closed = False
        self._switchboard: RemoteSwitchboard | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def switchboard(self) -> RemoteSwitchboard | None:
        sb = self._switchboard
        return sb if sb is not None and not sb.closed else None

    async def send_text(
        self,
        text: str,
        fmt: TextFormat | None = None,
        *,
        extra_headers: list[tuple[str, str]] | None = None,
        before_write: Callable[[], Awaitable[bool]] | None = None,
    ) -> DeliveryResult:
        # ``before_write`` (Router's pending record) is not called: the pool's store of
        # finished command ids makes a replayed send safe, so a core killed meanwhile sends
        # it again under the same id instead of reporting that it may not have arrived.
        del before_write
        return await self._deliver(
            "send_text",
            text=text,
            format=codec.encode_value(fmt),
            headers=[list(h) for h in extra_headers or ()],
        )

    async def send_nudge(self) -> DeliveryResult:
        return await self._deliver("send_nudge")

    async def send_typing(self) -> None:
        if self.switchboard is None:
            return  # never opens a switchboard just for this (as Conversation)
        with contextlib.suppress(PuppetError):
            await self._command("send_typing")

    async def close(self) -> None:
        self._closed = True
        if self.id is not None:
            with contextlib.suppress(PuppetError):
                await self._command("close")

    async def _deliver(self, kind: str, **data: Any) -> DeliveryResult:
        """A message's outcome; a pool that failed or did not answer is a result too."""
        if self._closed:
            return DeliveryResult(DeliveryStatus.FAILED, "the conversation is closed")
        try:
            reply = await self._command(kind, command_id=_send_id(), **data)
            return codec.decode_result(reply["result"])
        except RemoteCommandError as e:
            status = DeliveryStatus.NO_ANSWER if e.timed_out else DeliveryStatus.FAILED
            return DeliveryResult(status, str(e))
        except (KeyError, codec.CodecError) as e:
            return DeliveryResult(DeliveryStatus.FAILED, f"the connection pool's answer: {e}")

    async def _command(
        self, kind: str, *, command_id: str | None = None, **data: Any
    ) -> dict[str, Any]:
        reply = await self.client._command(kind, {**self._ref(), **data}, command_id=command_id)
        self.client._conversation_reply(self, reply)
        return reply

    def _tell(self, kind: str, **data: Any) -> None:
        """A command whose answer nobody waits for (failures are logged)."""
        self.client._spawn(self._command(kind, **data), kind)

    def _ref(self) -> dict[str, Any]:
        return {
            "conversation": self.id,
            "key": sorted(self.key),
            "exclude": sorted(self.client._detached_ids.get(self.key, ())),
        }

    def __repr__(self) -> str:
        return f"<RemoteConversation {self.id} with {sorted(self.participants)}>"


class _NotCarriedManager:
    """``client.p2p.manager`` of a remote session: no P2P asked for by the core travels
    yet (contacts' display pictures do: the pool fetches them itself and sends each
    DisplayPictureReceived with its data)."""

    pictures: object = None

    async def fetch_object(self, *args: Any, **kwargs: Any) -> bytes:
        raise NotSupported(f"pictures, emoticons and voice clips are {NOT_CARRIED}")

    def send_file(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupported(f"files are {NOT_CARRIED}")


class _NotCarriedP2P:
    def __init__(self) -> None:
        self.manager = _NotCarriedManager()
        self.auto_fetch_pictures = False
        self.picture_wanted: object = None


class RemoteClient:
    """A session held by a pool, as the core sees it. Feed it its owner's events with
    `apply`; its state, contacts and conversations follow them."""

    def __init__(
        self,
        owner: str,
        passport: str,
        link: CoreLink,
        *,
        command_timeout: float = 60.0,
    ) -> None:
        self.owner = owner
        self.link = link
        self.command_timeout = command_timeout
        self.config = RemoteConfig(passport.lower())
        self.contacts = ContactList()
        self.state = SessionState.CONNECTING
        self.stop_reason: str | None = None
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None
        self.protocol: int | None = None
        # The link's transfers (None: files and pictures are not carried over it).
        self.transfers: Transfers | None = getattr(link, "transfers", None)
        self.p2p: RemoteP2P | _NotCarriedP2P = (
            RemoteP2P(self) if self.transfers is not None else _NotCarriedP2P()
        )
        self._transfers: dict[str, RemoteIncomingFile | RemoteOutgoingFile] = {}
        self.own_picture: bytes | None = None  # as last set here (set again on a new pool)
        self.seen_offline_ids: set[str] = set()  # the pool keeps them; never read here
        self._listeners: list[Listener] = []
        self._state_changed = asyncio.Event()
        self._by_id: dict[str, RemoteConversation] = {}
        self._current: dict[frozenset[str], RemoteConversation] = {}
        self._detached: list[RemoteConversation] = []
        # Pool-side ids of conversations detached here, by people: a conversation the
        # core asks for afresh must not be one of them, whatever the pool did first.
        self._detached_ids: dict[frozenset[str], set[str]] = {}
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._tasks: set[asyncio.Task[object]] = set()
        self.snapshots = 0  # how many snapshots were applied (tests, metrics)

    # --- what the core reads ---

    @property
    def machine_guid(self) -> str | None:
        return self.config.machine_guid

    @property
    def own_endpoints(self) -> dict[str, str]:
        return dict(self.contacts.own_endpoints)

    @property
    def conversations(self) -> list[RemoteConversation]:
        return [*self._current.values(), *self._detached]

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def wait_online(self, timeout: float | None = None) -> None:
        """Wait until the pool reports the session online; raise if it stopped."""
        async with asyncio.timeout(timeout):
            while self.state is not SessionState.ONLINE:
                if self.state is SessionState.STOPPED:
                    raise self.error or PuppetError(self.stop_reason or "stopped")
                self._state_changed.clear()
                await self._state_changed.wait()

    # --- conversations ---

    def conversation(self, passports: Iterable[str]) -> RemoteConversation:
        """The conversation with these people (as ``Client.conversation``): the current
        one, else a new one the pool opens on first use."""
        key = frozenset(normalize_passport(p) for p in passports if p.strip())
        if not key:
            raise ValueError("a conversation needs at least one participant")
        conv = self._current.get(key)
        if conv is None or conv.closed:
            conv = self._current[key] = RemoteConversation(self, key)
        return conv

    def detach(self, conv: RemoteConversation) -> None:
        """As ``Client.detach``: the next `conversation` with its people is a new one."""
        if self._current.get(conv.key) is conv:
            del self._current[conv.key]
            self._detached.append(conv)
            if conv.id is not None:
                self._detached_ids.setdefault(conv.key, set()).add(conv.id)
                conv._tell("detach")

    def _conversation_reply(self, conv: RemoteConversation, reply: dict[str, Any]) -> None:
        cid = reply.get("conversation")
        if isinstance(cid, str) and cid != conv.id:
            # Named by the pool (first use, or the session restarted on another pool).
            if conv.id is not None and self._by_id.get(conv.id) is conv:
                del self._by_id[conv.id]
            if self._by_id.setdefault(cid, conv) is conv:
                conv.id = cid
        if reply.get("closed"):
            conv._closed = True
        if isinstance(people := reply.get("participants"), list):
            conv.participants.mirror(people)  # type: ignore[attr-defined]
        if reply.get("switchboard") is False and conv._switchboard is not None:
            conv._switchboard = None

    def _conversation_from(self, info: dict[str, Any]) -> RemoteConversation:
        cid = str(info["id"])
        key = frozenset(str(p) for p in info["key"])
        conv = self._by_id.get(cid)
        if conv is None:
            current = self._current.get(key)
            if current is not None and current.id is None and not current.closed:
                conv = current  # the one the core asked for: the pool named it
            else:
                conv = RemoteConversation(self, key)
                if current is None or current.closed:
                    self._current[key] = conv
            conv.id = cid
            self._by_id[cid] = conv
        if isinstance(people := info.get("participants"), list):
            conv.participants.mirror(people)  # type: ignore[attr-defined]
        if info.get("closed"):
            conv._closed = True
        return conv

    def _switchboard_from(
        self, conv: RemoteConversation | None, info: dict[str, Any], event_type: str
    ) -> RemoteSwitchboard:
        sid = str(info["id"])
        sb = conv._switchboard if conv is not None else None
        if sb is None or sb.id != sid:
            sb = RemoteSwitchboard(sid, conv)
        if isinstance(people := info.get("participants"), list):
            sb.participants = set(people)
        sb.closed = bool(info.get("closed")) or event_type == "SwitchboardClosed"
        if conv is not None:
            if not sb.closed:
                conv._switchboard = sb
            elif conv._switchboard is sb:
                conv._switchboard = None
        return sb

    # --- commands ---

    async def _command(
        self, kind: str, data: dict[str, Any], *, command_id: str | None = None
    ) -> dict[str, Any]:
        envelope = Envelope(command_id or f"{kind}:{uuid.uuid4().hex}", self.owner, kind, data)
        try:
            return await self.link.command(envelope, timeout=self.command_timeout)
        except RemoteCommandError:
            raise
        except CommandFailed as e:
            raise RemoteCommandError(str(e)) from None
        except TimeoutError:
            raise RemoteCommandError(
                f"the connection pool did not answer within {self.command_timeout:g} s; "
                "it may or may not have been done",
                timed_out=True,
            ) from None

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"remote-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("%s: %s failed: %s", self.owner, task.get_name(), error)

    async def set_status(self, status: str) -> None:
        await self._command("set_status", {"status": status})

    async def set_nick(self, nick: str) -> None:
        await self._command("set_nick", {"nick": nick})

    async def set_psm(self, text: str) -> None:
        await self._command("set_psm", {"text": text})

    async def set_display_picture(self, data: bytes | None) -> None:
        """The owner's picture, put through the link's transfers and set by the pool."""
        if self.transfers is None:
            raise NotSupported(f"display pictures are {NOT_CARRIED}")
        self.own_picture = data or None
        await self._send_picture(data)

    async def _send_picture(self, data: bytes | None) -> None:
        transfers = self.transfers
        assert transfers is not None
        if not data:
            await self._command("set_display_picture", {"transfer": None})
            return
        tid = f"core:{uuid.uuid4().hex}"
        # Put while the pool reads: a picture over the window would wait for it.
        putting = asyncio.get_running_loop().create_task(transfers.write_all(tid, data))
        try:
            await self._command("set_display_picture", {"transfer": tid})
        except BaseException:
            putting.cancel()
            with contextlib.suppress(Exception):
                await transfers.cancel(tid, "the picture was not set")
            raise
        with contextlib.suppress(TransferCancelled):
            await putting

    async def add_contact(
        self, passport: str, group: str | None = None, nick: str | None = None
    ) -> None:
        await self._command("add_contact", {"passport": passport, "group": group, "nick": nick})

    async def remove_contact(self, passport: str, group: str | None = None) -> None:
        await self._command("remove_contact", {"passport": passport, "group": group})

    async def block(self, passport: str) -> None:
        await self._command("block", {"passport": passport})

    async def unblock(self, passport: str) -> None:
        await self._command("unblock", {"passport": passport})

    async def accept(self, passport: str) -> None:
        await self._command("accept", {"passport": passport})

    async def reject(self, passport: str) -> None:
        await self._command("reject", {"passport": passport})

    async def add_group(self, name: str) -> str:
        return str((await self._command("add_group", {"name": name}))["id"])

    async def rename_group(self, gid: str, name: str) -> None:
        await self._command("rename_group", {"id": gid, "name": name})

    async def remove_group(self, gid: str) -> None:
        await self._command("remove_group", {"id": gid})

    async def send_offline(self, passport: str, text: str) -> DeliveryResult:
        try:
            reply = await self._command(
                "send_offline", {"passport": passport, "text": text}, command_id=_send_id()
            )
            return codec.decode_result(reply["result"])
        except RemoteCommandError as e:
            return DeliveryResult(DeliveryStatus.FAILED, str(e))

    async def resync(self) -> None:
        """Ask the pool for a snapshot and apply it (also published to the event stream)."""
        reply = await self._command("resync", {})
        self.apply_snapshot(reply["snapshot"])

    async def close(self) -> None:
        """Forget this proxy (the session goes on in its pool). Transfers under way are
        cancelled, and the pool told (it tells the contact)."""
        running = [t._task for t in self._transfers.values() if t._task is not None]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        self._listeners.clear()

    # --- events ---

    def apply(self, envelope: Envelope) -> None:
        """One event of the owner's session: mirror it, then tell the listeners (as the
        Client does, after its model changed). A redelivered id is applied once."""
        if envelope.id in self._seen:
            return
        self._remember(envelope.id)
        data = envelope.data
        if envelope.kind == "SessionSnapshot":
            self.apply_snapshot(data)
            return
        if envelope.kind == "SessionChanged":
            self._session(data.get("session"))
            return
        if envelope.kind == "NotCarried":
            self._session(data.get("session"))
            self._emit(self._not_carried(data))
            return
        if envelope.kind == "TransferFinished":
            # The end of one of our files to a contact (told once, by the transfer).
            self._session(data.get("session"))
            sending = self._transfers.get(str(data.get("transfer")))
            if isinstance(sending, RemoteOutgoingFile):
                try:
                    sending.ended(self._decode(envelope))  # type: ignore[arg-type]
                except (codec.CodecError, KeyError, TypeError, ValueError) as e:
                    log.warning("%s: a TransferFinished was unreadable: %s", self.owner, e)
            return
        try:
            event = self._decode(envelope)
        except (codec.CodecError, KeyError, TypeError, ValueError) as e:
            log.warning("%s: an event %s was unreadable: %s", self.owner, envelope.kind, e)
            return
        self._mirror(event, data)
        self._session(data.get("session"))
        self._emit(event)

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        if len(self._seen_order) > SEEN_EVENTS:
            self._seen.discard(self._seen_order.popleft())

    def _decode(self, envelope: Envelope) -> object:
        data = envelope.data
        encoded = data["event"]
        cls = codec.EVENT_TYPES.get(encoded.get("type", ""))
        if cls is not None and issubclass(cls, ConversationEvent):
            info = data.get("conversation")
            conv = self._conversation_from(info) if info else None
            sb = self._switchboard_from(conv, data["switchboard"], encoded["type"])
            return codec.decode_event(encoded, conversation=conv, switchboard=sb)
        if encoded.get("type") == "FileOffered" and self.transfers is not None:
            offer = codec.decode_event(encoded)
            transfer = RemoteIncomingFile(
                self,
                str(data["transfer"]),
                offer.sender,
                offer.name,
                offer.size,
                offer.preview,  # type: ignore[attr-defined]
            )
            return codec.decode_event(encoded, transfer=transfer)
        return codec.decode_event(encoded)

    def _mirror(self, event: object, data: dict[str, Any]) -> None:
        contacts = self.contacts
        if "contact" in data and isinstance(event, _HAS_PASSPORT):
            if data["contact"] is None:
                contacts.contacts.pop(event.passport.lower(), None)
            else:
                contact = codec.decode_contact(data["contact"])
                contacts.contacts[contact.passport] = contact
        if "groups" in data:
            groups = [codec.decode_group(g) for g in data["groups"]]
            contacts.groups = {g.id: g for g in groups}
            if isinstance(event, contact_ev.GroupRemoved):
                for c in contacts.contacts.values():
                    if event.id in c.groups:
                        c.groups = c.groups - {event.id}
        if "lists" in data:
            self._lists(data["lists"])
        if isinstance(event, OwnEndpointsChanged):
            contacts.own_endpoints = dict(event.endpoints)

    def _lists(self, lists: dict[str, Any]) -> None:
        contacts = self.contacts
        contacts.groups = {g.id: g for g in map(codec.decode_group, lists.get("groups", ()))}
        decoded = map(codec.decode_contact, lists.get("contacts", ()))
        contacts.contacts = {c.passport: c for c in decoded}
        contacts.gtc = str(lists.get("gtc", contacts.gtc))
        contacts.blp = str(lists.get("blp", contacts.blp))
        contacts.own_endpoints = dict(lists.get("own_endpoints") or {})

    def _session(self, session: dict[str, Any] | None) -> None:
        if not session:
            return
        state = SessionState(session["state"])
        if state is not self.state:
            self.state = state
            self._state_changed.set()
        self.stop_reason = session.get("stop_reason")
        self.error = codec.decode_error(session.get("error"))
        self.last_error = codec.decode_error(session.get("last_error"))
        self.protocol = session.get("protocol")
        self.contacts.own_nick = str(session.get("own_nick") or "")

    def apply_snapshot(self, data: dict[str, Any]) -> None:
        """Replace the mirror with the pool's snapshot; tells the listeners what changed
        (the state, and a ContactListSynced so the sides show every contact)."""
        before = self.state
        self.config.passport = str(data.get("passport") or self.config.passport).lower()
        self.config.machine_guid = data.get("machine_guid") or self.config.machine_guid
        self._lists(data.get("lists") or {})
        self._session(data.get("session"))
        live: set[str] = set()
        for info in data.get("conversations") or ():
            conv = self._conversation_from(info)
            live.add(conv.id or "")
            if info.get("switchboard") is False:
                conv._switchboard = None
        # Conversations the pool no longer has (a restarted or moved session) are closed:
        # their portals get a fresh one on the next message, as after Client.stop.
        for cid, conv in list(self._by_id.items()):
            if cid not in live:
                conv._closed = True
                del self._by_id[cid]
        self._detached = [c for c in self._detached if not c.closed]
        self.snapshots += 1
        self._picture_again(data)
        if self.state is not before:
            self._emit(SessionStateChanged(self.state, self.stop_reason))
        contacts = self.contacts
        self._emit(contact_ev.ContactListSynced(len(contacts.contacts), len(contacts.groups)))

    def _picture_again(self, snapshot: dict[str, Any]) -> None:
        """The session started afresh on a pool (moved, or restarted) without the
        picture set here: set it there again, as a Client keeps it across reconnects."""
        picture = self.own_picture
        if picture is None or self.transfers is None or "own_picture" not in snapshot:
            return
        if snapshot["own_picture"] != sha1d(picture):
            self._spawn(self._send_picture(picture), "set_display_picture")

    def _not_carried(self, data: dict[str, Any]) -> object:
        from msnbridge.core.outage import ConnectionNotice  # the core's notice event

        size = data.get("size")
        detail = f" ({data.get('name')}, {size} bytes)" if size is not None else ""
        text = (
            f"A {data.get('what', 'file')} from {data.get('sender')}{detail} was refused: "
            f"{data.get('reason') or NOT_CARRIED}."
        )
        return ConnectionNotice(text, back=False)

    def _emit(self, event: object) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("%s: listener failed on %s", self.owner, type(event).__name__)

    def __repr__(self) -> str:
        return f"<RemoteClient {self.owner} as {self.config.passport} {self.state.value}>"
