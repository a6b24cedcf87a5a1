"""A pool's sessions: commands from the core carried out on real `puppets.Client`s, and
the clients' events published back to the core.

API (pools-proxy; helper P2's pool process and RemoteSessions build on it)
--------------------------------------------------------------------------
Pool side (this module):

- ``SessionExecutor(link: PoolLink, done: DoneStore, *, pool: str)`` registers itself as
  the link's command handler (``link.on_command(executor.handle)``).
  - ``attach(owner, client)``: carry this (started or not) client's events from now on and
    publish a ``SessionSnapshot`` of it. ``detach(owner)`` → the client (not stopped):
    its events stop here. ``mute(owner)``: stop publishing for it (handover) without
    detaching. ``clients``: owner → Client.
  - ``register(kind, handler)``: a pool-level command (``login``, ``logout``…) handled by
    ``handler(envelope) -> dict``; deduped like the others.
  - ``handle(envelope) -> dict``: the CommandHandler: raises ``CommandFailed`` worded for
    the user (as the core words the same failure in-process), ``NotHeld`` (a
    CommandFailed) when this pool holds no session for the owner (not remembered as
    done, so the same id can be carried out by the pool that holds it).
  - ``snapshot(owner) -> dict``, ``publish_snapshot(owner)``, ``flush()`` (wait until
    every queued event is published), ``close()``.
- ``DoneStore`` (protocol; ``memory_link.MemoryDoneStore``, P2: a Redis one with
  ``{p}:done:{id}`` SET NX / EX 1 day): ``claim(id) -> bool`` (first time?),
  ``outcome(id) -> dict | None``, ``finish(id, outcome)``, ``release(id)``.

Core side (``remote_client``): ``RemoteClient(owner, passport, link: CoreLink, *,
command_timeout)`` quacks like ``puppets.Client`` for what msnbridge uses; feed it every
event envelope of its owner with ``client.apply(envelope)`` (a ``SessionSnapshot`` too).
``RemoteConversation`` / ``RemoteSwitchboard`` stand for the pool's objects; one object per
pool-side id. ``stable_command_id("send:<matrix event id>")`` (context manager) gives the
sends made inside it ids ``send:<matrix event id>:<n>`` instead of random ones.

Wire: commands are ``Envelope(id, owner, kind, data)``; kinds and their data:

====================  ==============================================  =========================
kind                  data                                            reply
====================  ==============================================  =========================
set_status            status                                          {}
set_nick              nick                                            {}
set_psm               text                                            {}
add_contact           passport, group (id or None), nick (or None)    {}
remove_contact        passport, group                                 {}
block / unblock       passport                                        {}
accept / reject       passport                                        {}
add_group             name                                            id
rename_group          id, name                                        {}
remove_group          id                                              {}
send_offline          passport, text                                  result
send_text             conversation, key, text, format, headers        conversation, result, …
send_nudge            conversation, key                               conversation, result, …
send_typing           conversation, key                               conversation, …
invite                conversation, key, passport                     conversation, switchboard
add_participant       conversation, key, passport                     conversation, …
detach / close        conversation, key                               conversation, …
resync                —                                               snapshot (also published)
file_accept           transfer (the id of a FileOffered)              pool
file_decline          transfer                                        {}
file_cancel           transfer, reason                                {}
file_send             transfer (the core's id), peer, name, size      pool
fetch_object          transfer, peer, msnobject, timeout              size, pool
set_display_picture   transfer (or None: no picture)                  sha1d
====================  ==============================================  =========================

The ``file_*``, ``fetch_object`` and ``set_display_picture`` commands move their bytes
through the link's ``transfers`` (``pool_transfers`` has the details).

``conversation`` is the pool-side conversation id (None for one the core has not seen
yet: then ``key``, the people, picks ``client.conversation(key)``); replies about a
conversation carry its id, ``closed`` and ``participants``. ``result`` is
``codec.encode_result`` of a DeliveryResult (a failed delivery is a result, not a
CommandFailed). ``format`` is ``codec.encode_value`` of a TextFormat or None.

Events: ``Envelope(id "<pool>:<epoch>:<seq>", owner, kind = event class name, data)``
with ``data["event"]`` = ``codec.encode_event``, ``data["session"]`` = the session's state
after the event (state, stop_reason, error, last_error, protocol, own_nick), and where
it applies ``contact`` (that contact as the pool's model has it after the event, None when
gone), ``groups`` (all groups, on group events), ``lists`` (every contact and group, on
ContactListSynced), ``conversation`` {id, key, participants} and ``switchboard`` {id,
participants, closed}. Kinds beyond the puppet events: ``SessionSnapshot`` (data =
`snapshot`), ``SessionChanged`` {session} (a change no event told, e.g. our own nick),
``NotCarried`` {what, sender, name, size, reason} for a file offer the pool
declined because its link carries no transfers. ``FileOffered`` carries ``transfer``
(its id, for ``file_accept``); ``TransferFinished`` is published only for a file the
core sent (``transfer`` = the core's id). The snapshot has ``own_picture`` (the SHA1D of
the owner's display picture the session serves, or None).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

from puppets import Client, MSNPError
from puppets.contacts import ContactList
from puppets.conversation import Conversation
from puppets.event import contact as contact_ev
from puppets.event.conversation import (
    ConversationEvent,
    DeliveryResult,
    DeliveryStatus,
    P2PPayloadReceived,
    SwitchboardClosed,
)
from puppets.event.offline import OfflineMessageReceived
from puppets.event.session import OwnEndpointsChanged
from puppets.event.transfer import FileOffered, TransferFinished, TransferProgress
from puppets.switchboard import Switchboard

from . import codec
from .link import CommandFailed, CommandHandler, Envelope, PoolLink
from .outbox import Outbox
from .pool_transfers import PoolTransfers

log = logging.getLogger("msnbridge.pools.executor")

__all__ = ["DoneStore", "NotHeld", "SessionExecutor", "describe_failure"]

# A repeated command whose first delivery is still being carried out is waited for this
# long (polling its outcome) before it is answered as unknown.
REPEAT_WAIT = 60.0

_CONTACT_EVENTS = (
    contact_ev.PresenceChanged,
    contact_ev.PersonalMessageChanged,
    contact_ev.ContactAdded,
    contact_ev.ContactRemoved,
    contact_ev.AddedBy,
    contact_ev.RemovedBy,
)
_GROUP_EVENTS = (contact_ev.GroupAdded, contact_ev.GroupRemoved, contact_ev.GroupRenamed)


class NotHeld(CommandFailed):
    """This pool holds no session for the owner (it moved, or is starting elsewhere)."""


class DoneStore(Protocol):
    """Which command ids were carried out, and their outcome, so a redelivered command
    is answered from here instead of being done twice. Shared by every pool."""

    async def claim(self, command_id: str) -> bool:
        """True the first time (it is now being carried out), False afterwards."""
        ...

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        """``{"ok": True, "data": reply}`` or ``{"ok": False, "error": text}`` once
        finished; None while it is being carried out (or after `release`)."""
        ...

    async def finish(self, command_id: str, outcome: dict[str, Any]) -> None: ...

    async def release(self, command_id: str) -> None:
        """Forget a claim whose command was not carried out: the id may run again."""
        ...


def describe_failure(error: BaseException) -> str:
    """A failed Client call in words, as the core's commands word it in-process
    (``msnbridge.core.contact_commands.describe_error``)."""
    if isinstance(error, MSNPError):
        return f"the MSN server answered error {error.code}: {error.meaning}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def session_state(client: Client) -> dict[str, Any]:
    return {
        "state": client.state.value,
        "stop_reason": client.stop_reason,
        "error": codec.encode_error(client.error),
        "last_error": codec.encode_error(client.last_error),
        "protocol": client.protocol,
        "own_nick": client.contacts.own_nick,
    }


def lists_of(contacts: ContactList) -> dict[str, Any]:
    return {
        "groups": [codec.encode_group(g) for g in contacts.groups.values()],
        "contacts": [codec.encode_contact(c) for c in contacts.contacts.values()],
        "gtc": contacts.gtc,
        "blp": contacts.blp,
        "own_endpoints": dict(contacts.own_endpoints),
    }


class _Held:
    """One session of this pool: its client and the ids given to its live objects."""

    def __init__(self, owner: str, client: Client, listener: Callable[[object], None]) -> None:
        self.owner = owner
        self.client = client
        self.listener = listener
        self.muted = False
        self.published_session: dict[str, Any] | None = None  # the last one sent
        self.conversations: dict[str, Conversation] = {}
        self.conversation_ids: dict[int, str] = {}  # id(conversation) → its id
        self.switchboard_ids: dict[int, str] = {}  # id(switchboard) → its id
        self.offline_queued: set[str] = set()  # offline messages in the outbox, not yet acked


class SessionExecutor:
    def __init__(self, link: PoolLink, done: DoneStore, *, pool: str, temp_dir: str = "") -> None:
        self.link = link
        self.done = done
        self.pool = pool
        # A new epoch per executor: event and object ids never repeat across restarts.
        self.epoch = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._held: dict[str, _Held] = {}
        self._extra: dict[str, CommandHandler] = {}
        self._outbox = Outbox(link, f"pool-events:{pool}")
        self._closing = False
        # Files, emoticons, voice clips and the owner's picture, where the link carries
        # transfers (both of this project's links do).
        channel = getattr(link, "transfers", None)
        self.transfers = PoolTransfers(self, channel, temp_dir) if channel is not None else None
        link.on_command(self.handle)

    # --- sessions ---

    @property
    def clients(self) -> dict[str, Client]:
        return {owner: held.client for owner, held in self._held.items()}

    def attach(self, owner: str, client: Client) -> None:
        """Carry ``client``'s events for ``owner`` from now on; publishes a snapshot."""
        if owner in self._held:
            self.detach(owner)

        def listener(event: object) -> None:
            self._on_event(owner, event)

        held = _Held(owner, client, listener)
        self._held[owner] = held
        for conv in client.conversations:
            if not conv.closed:
                self._conversation_id(held, conv)
        client.add_listener(listener)
        client.offline_ack = partial(self._offline_published, held)
        self.publish_snapshot(owner)

    def detach(self, owner: str) -> Client | None:
        """Stop carrying the owner's session here; the client is returned, not stopped."""
        held = self._held.pop(owner, None)
        if held is None:
            return None
        held.client.remove_listener(held.listener)
        return held.client

    def mute(self, owner: str) -> None:
        """Publish nothing more for the owner (its session is being handed over)."""
        if (held := self._held.get(owner)) is not None:
            held.muted = True

    def register(self, kind: str, handler: CommandHandler) -> None:
        """A command carried out by ``handler`` (pool-level: login, logout…)."""
        self._extra[kind] = handler

    # --- commands ---

    async def handle(self, envelope: Envelope) -> dict[str, Any]:
        """Carry out a command once per id; a repeat gets the first outcome."""
        if not await self.done.claim(envelope.id):
            return await self._repeat(envelope)
        try:
            data = await self._run(envelope)
        except NotHeld:
            await self.done.release(envelope.id)
            raise
        except CommandFailed as e:
            await self.done.finish(envelope.id, {"ok": False, "error": str(e)})
            raise
        except BaseException:
            await self.done.release(envelope.id)
            raise
        await self.done.finish(envelope.id, {"ok": True, "data": data})
        return data

    async def _repeat(self, envelope: Envelope) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPEAT_WAIT
        delay = 0.01
        while True:
            outcome = await self.done.outcome(envelope.id)
            if outcome is not None:
                log.debug("Command %s was carried out before: answered again", envelope.id)
                if outcome.get("ok"):
                    return dict(outcome.get("data") or {})
                raise CommandFailed(str(outcome.get("error", "it failed")))
            if loop.time() >= deadline:
                raise CommandFailed("it is still being carried out after a repeat")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _run(self, envelope: Envelope) -> dict[str, Any]:
        extra = self._extra.get(envelope.kind)
        if extra is not None:
            return await extra(envelope)
        method = _COMMANDS.get(envelope.kind)
        if method is None and envelope.kind in TRANSFER_COMMANDS:
            if self.transfers is None:
                raise CommandFailed("files are not carried through this connection pool")
            method = _transfer_command(envelope.kind)
        if method is None:
            raise CommandFailed(f"this connection pool does not know the command {envelope.kind!r}")
        held = self._held.get(envelope.owner)
        if held is None:
            raise NotHeld("your MSN session is not on this connection pool (it may be moving)")
        try:
            return await method(self, held, envelope.data)
        except CommandFailed:
            raise
        except (KeyError, TypeError, ValueError, codec.CodecError) as e:
            raise CommandFailed(f"the bridge sent a malformed {envelope.kind} ({e})") from None
        except Exception as e:  # PuppetError, OSError, TimeoutError: the Client's failures
            raise CommandFailed(describe_failure(e)) from None
        finally:
            self._session_changed(held)

    def _session_changed(self, held: _Held) -> None:
        """Some changes come with no event (our own nick on MSNP10+): after a command,
        a SessionChanged carries the session's state when it is not what was published."""
        if held.muted or self._held.get(held.owner) is not held:
            return
        if session_state(held.client) != held.published_session:
            self._enqueue(held, "SessionChanged", {"session": session_state(held.client)})

    async def _set_status(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.set_status(str(data["status"]))
        return {}

    async def _set_nick(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.set_nick(str(data["nick"]))
        return {}

    async def _set_psm(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.set_psm(str(data["text"]))
        return {}

    async def _add_contact(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.add_contact(str(data["passport"]), data.get("group"), data.get("nick"))
        return {}

    async def _remove_contact(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.remove_contact(str(data["passport"]), data.get("group"))
        return {}

    async def _add_group(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": await held.client.add_group(str(data["name"]))}

    async def _rename_group(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.rename_group(str(data["id"]), str(data["name"]))
        return {}

    async def _remove_group(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await held.client.remove_group(str(data["id"]))
        return {}

    async def _send_offline(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        result = await held.client.send_offline(str(data["passport"]), str(data["text"]))
        return {"result": codec.encode_result(result)}

    # --- conversation commands ---

    def _conversation_id(self, held: _Held, conv: Conversation) -> str:
        cid = held.conversation_ids.get(id(conv))
        if cid is None or held.conversations.get(cid) is not conv:
            cid = f"{self.pool}:{self.epoch}:c{next(self._seq)}"
            held.conversation_ids[id(conv)] = cid
            held.conversations[cid] = conv
        return cid

    def _forget_closed(self, held: _Held) -> None:
        for cid, conv in list(held.conversations.items()):
            if conv.closed:
                del held.conversations[cid]
                held.conversation_ids.pop(id(conv), None)

    def _resolve(self, held: _Held, data: dict[str, Any]) -> tuple[str, Conversation]:
        """The conversation a command names: by id, else (an id of an earlier pool or
        epoch, or none yet) the client's current one with its people."""
        cid = data.get("conversation")
        conv = held.conversations.get(cid) if isinstance(cid, str) else None
        if conv is None:
            key = [str(p) for p in data["key"]]
            conv = held.client.conversation(key)
            if held.conversation_ids.get(id(conv)) in set(data.get("exclude") or ()):
                # The core detached it (that command may not have been carried out yet).
                held.client.detach(conv)
                conv = held.client.conversation(key)
        return self._conversation_id(held, conv), conv

    def _about(self, cid: str, conv: Conversation) -> dict[str, Any]:
        return {
            "conversation": cid,
            "closed": conv.closed,
            "participants": sorted(conv.participants),
            "switchboard": conv.switchboard is not None,
        }

    async def _send_text(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        fmt = codec.decode_value(data.get("format"))
        headers = [(str(k), str(v)) for k, v in data.get("headers") or ()] or None
        try:
            result = await conv.send_text(str(data["text"]), fmt, extra_headers=headers)
        except Exception as e:  # a result, never an exception, for every message
            log.warning("%s: send_text raised: %s", held.owner, e)
            result = DeliveryResult(DeliveryStatus.FAILED, str(e) or type(e).__name__)
        return {**self._about(cid, conv), "result": codec.encode_result(result)}

    async def _send_nudge(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        result = await conv.send_nudge()
        return {**self._about(cid, conv), "result": codec.encode_result(result)}

    async def _send_typing(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        await conv.send_typing()
        return self._about(cid, conv)

    async def _invite(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        passport = str(data["passport"]).strip().lower()
        sb = conv.switchboard
        if sb is None:
            conv.participants.add(passport)
        else:
            await sb.invite(passport)
        return {**self._about(cid, conv), "invited": sb is not None}

    async def _add_participant(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        conv.participants.add(str(data["passport"]).strip().lower())
        return self._about(cid, conv)

    async def _detach(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        held.client.detach(conv)
        return self._about(cid, conv)

    async def _close(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        cid, conv = self._resolve(held, data)
        await conv.close()
        about = self._about(cid, conv)
        self._forget_closed(held)
        return about

    async def _resync(self, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        snapshot = self.snapshot(held.owner)
        self._enqueue(held, "SessionSnapshot", snapshot)
        return {"snapshot": snapshot}

    # --- snapshots ---

    def snapshot(self, owner: str) -> dict[str, Any]:
        """Everything the core mirrors of the owner's session, as it is now."""
        held = self._held[owner]
        client = held.client
        self._forget_closed(held)
        for conv in client.conversations:
            if not conv.closed:
                self._conversation_id(held, conv)
        own = getattr(client, "_own_picture", None)
        return {
            "passport": client.config.passport,
            "machine_guid": client.machine_guid,
            "own_picture": own[0].sha1d if own else None,  # the owner's display picture
            "session": session_state(client),
            "lists": lists_of(client.contacts),
            "conversations": [
                {"id": cid, "key": sorted(conv.key), **self._about(cid, conv)}
                for cid, conv in held.conversations.items()
            ],
        }

    def publish_snapshot(self, owner: str) -> None:
        """Queue a SessionSnapshot of the owner's session (after the events before it)."""
        held = self._held.get(owner)
        if held is not None:
            self._enqueue(held, "SessionSnapshot", self.snapshot(owner))

    # --- events ---

    def _on_event(self, owner: str, event: object) -> None:
        held = self._held.get(owner)
        if held is None or held.muted:
            return
        if isinstance(event, P2PPayloadReceived):
            return  # the pool's P2P layer consumes these
        try:
            if self.transfers is not None and self.transfers.on_event(held, event):
                return
        except codec.CodecError as e:
            log.warning("%s: a %s could not be encoded: %s", owner, type(event).__name__, e)
            return
        if isinstance(event, TransferProgress | TransferFinished):
            return
        if isinstance(event, FileOffered):
            self._not_carried(held, event)
            return
        try:
            data = self._event_data(held, event)
        except codec.CodecError as e:
            log.warning("%s: a %s could not be encoded: %s", owner, type(event).__name__, e)
            return
        self._enqueue(held, type(event).__name__, data)
        if isinstance(event, OfflineMessageReceived):
            held.offline_queued.add(event.id)

    async def _offline_published(
        self, held: _Held, events: Sequence[OfflineMessageReceived]
    ) -> None:
        """The client's offline_ack: its offline messages may leave the MSN server once
        they are in the link (the core takes them from there), not while in the outbox."""
        queued = [e.id for e in events if e.id in held.offline_queued]
        held.offline_queued.difference_update(queued)
        if len(queued) < len(events) or self._held.get(held.owner) is not held:
            raise RuntimeError("offline messages not carried (session muted or moved)")
        await self._outbox.flush()

    def _not_carried(self, held: _Held, event: FileOffered) -> None:
        reason = "files are not carried through this connection pool"
        with contextlib.suppress(Exception):
            event.transfer.decline()
        data = {
            "what": "file",
            "sender": event.sender,
            "name": event.name,
            "size": event.size,
            "reason": reason,
            "session": session_state(held.client),
        }
        self._enqueue(held, "NotCarried", data)

    def new_id(self, kind: str) -> str:
        """An id for a live object of this pool (``kind``: c, s, t…), never repeated."""
        return f"{self.pool}:{self.epoch}:{kind}{next(self._seq)}"

    def event_data(self, held: _Held, event: object) -> dict[str, Any]:
        return self._event_data(held, event)

    def enqueue(self, held: _Held, kind: str, data: dict[str, Any]) -> None:
        self._enqueue(held, kind, data)

    def _event_data(self, held: _Held, event: object) -> dict[str, Any]:
        client = held.client
        data: dict[str, Any] = {"event": codec.encode_event(event)}
        if isinstance(event, _CONTACT_EVENTS):
            contact = client.contacts.get(event.passport)
            data["contact"] = codec.encode_contact(contact) if contact is not None else None
        elif isinstance(event, _GROUP_EVENTS):
            data["groups"] = [codec.encode_group(g) for g in client.contacts.groups.values()]
        elif isinstance(event, contact_ev.ContactListSynced | OwnEndpointsChanged):
            data["lists"] = lists_of(client.contacts)
        elif isinstance(event, ConversationEvent):
            conv = event.conversation
            if conv is not None:
                cid = self._conversation_id(held, conv)
                data["conversation"] = {
                    "id": cid,
                    "key": sorted(conv.key),
                    "participants": sorted(conv.participants),
                    "closed": conv.closed,
                }
            data["switchboard"] = self._switchboard(held, event.switchboard, event)
        data["session"] = session_state(client)
        return data

    def _switchboard(self, held: _Held, sb: Switchboard, event: object) -> dict[str, Any]:
        key = id(sb)
        sid = held.switchboard_ids.get(key)
        if sid is None:
            sid = held.switchboard_ids[key] = f"{self.pool}:{self.epoch}:s{next(self._seq)}"
        if isinstance(event, SwitchboardClosed):
            del held.switchboard_ids[key]  # id() may be reused once it is gone
        return {"id": sid, "participants": sorted(sb.participants), "closed": sb.closed}

    def _enqueue(self, held: _Held, kind: str, data: dict[str, Any]) -> None:
        session = data.get("session")
        if session is not None:
            held.published_session = session
        event_id = f"{self.pool}:{self.epoch}:{next(self._seq)}"
        self._outbox.put(Envelope(event_id, held.owner, kind, data))

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event queued so far is published."""
        await self._outbox.flush(timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Publish what is queued (up to ``timeout``), then stop; clients are not stopped."""
        if self.transfers is not None:
            await self.transfers.close()
        await self._outbox.close(timeout)
        for owner in list(self._held):
            self.detach(owner)


_Method = Callable[[SessionExecutor, _Held, dict[str, Any]], Awaitable[dict[str, Any]]]


def _on_passport(name: str) -> _Method:
    """block, unblock, accept, reject: a Client method taking a passport."""

    async def run(executor: SessionExecutor, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        await getattr(held.client, name)(str(data["passport"]))
        return {}

    return run


_COMMANDS: dict[str, _Method] = {
    "set_status": SessionExecutor._set_status,
    "set_nick": SessionExecutor._set_nick,
    "set_psm": SessionExecutor._set_psm,
    "add_contact": SessionExecutor._add_contact,
    "remove_contact": SessionExecutor._remove_contact,
    "block": _on_passport("block"),
    "unblock": _on_passport("unblock"),
    "accept": _on_passport("accept"),
    "reject": _on_passport("reject"),
    "add_group": SessionExecutor._add_group,
    "rename_group": SessionExecutor._rename_group,
    "remove_group": SessionExecutor._remove_group,
    "send_offline": SessionExecutor._send_offline,
    "send_text": SessionExecutor._send_text,
    "send_nudge": SessionExecutor._send_nudge,
    "send_typing": SessionExecutor._send_typing,
    "invite": SessionExecutor._invite,
    "add_participant": SessionExecutor._add_participant,
    "detach": SessionExecutor._detach,
    "close": SessionExecutor._close,
    "resync": SessionExecutor._resync,
}
# Carried out by PoolTransfers (see pool_transfers for their data).
TRANSFER_COMMANDS = frozenset(
    {"file_accept", "file_decline", "file_cancel", "file_send", "fetch_object",
     "set_display_picture"}
)  # fmt: skip


def _transfer_command(kind: str) -> _Method:
    async def run(executor: SessionExecutor, held: _Held, data: dict[str, Any]) -> dict[str, Any]:
        assert executor.transfers is not None
        return await getattr(executor.transfers, kind)(held, data)  # type: ignore[no-any-return]

    return run


COMMANDS = frozenset(_COMMANDS) | TRANSFER_COMMANDS
