"""The P2P layer of one client: frames in and out, MSNSLP sessions, acks, flow control.

Incoming ``application/x-msnmsgrp2p`` payloads are fed to :meth:`P2PManager.feed`. In the
v1 framing every complete message (an SLP message, a data message) is acknowledged, once
per message; in the v2 framing (MSNP16+, both sides announcing it) every frame that asks
for it (RAK) is. SLP messages (session 0) are reassembled up to a bound; data goes
straight to its session's sink chunk by chunk, so nothing larger than a chunk is held.

The framing used with a contact is v2 when we may use it (:attr:`P2PManager.own_v2`) and
the contact's extended capabilities announce it (:attr:`P2PManager.peer_v2`), v1
otherwise; once a contact has sent us a frame, we answer in the framing it used.

Outgoing messages go through a :class:`~.sending.MessageSender`: cut into chunks that
fit the switchboard payload limit and written through a :class:`P2PLink` (the client's
conversation with the contact). Flow control is a window of switchboard ``MSG D`` not yet
acknowledged by the server: the next chunk is read from its source only when fewer than
``window`` are outstanding.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path

from ..event.conversation import DeliveryResult
from ..event.transfer import DisplayPictureReceived, FileOffered, P2PInvitationDeclined
from ..msnobject import InvalidMSNObject, MSNObject
from ..msnobject import parse as parse_msnobject
from . import slp
from .filecontext import FileContext, FileContextError
from .header import (
    TF,
    TLV_ACK,
    TLV_PEER_INFO,
    Flags,
    Frame,
    FrameV2,
    Header,
    OpCode,
    P2PFormatError,
)
from .pictures import PictureCache
from .sending import DEFAULT_WINDOW, MessageSender, P2PLink, read_path
from .slp import SLPError, SLPMessage, parse_slp
from .transfer import IncomingFile, OutgoingFile, Transfer, TransferError
from .transport import parse_payload

__all__ = ["ObjectFetchError", "P2PLink", "P2PManager"]

log = logging.getLogger("puppets.p2p")

MAX_PARTIAL_SLP = 8  # SLP messages being reassembled per contact
MAX_OBJECT = 1 << 20  # display pictures and emoticons larger than this are refused


class ObjectFetchError(Exception):
    pass


class _ObjectFetch:
    """Our request for a contact's MSNObject data (display picture, emoticon)."""

    def __init__(self, peer: str, session_id: int, obj: MSNObject) -> None:
        self.peer = peer
        self.session_id = session_id
        self.obj = obj
        self.call_id = slp.new_guid()
        self.branch = slp.new_guid()
        self.buf = bytearray()
        self.result: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def fail(self, reason: str) -> None:
        if not self.result.done():
            self.result.set_exception(ObjectFetchError(reason))
            self.result.exception()


class _ObjectServe:
    """A contact's request for one of our objects; lives until the data is acked."""

    def __init__(self, peer: str, session_id: int, invite: SLPMessage) -> None:
        self.peer = peer
        self.session_id = session_id
        self.call_id = invite.call_id
        self.branch = invite.branch


Session = Transfer | _ObjectFetch | _ObjectServe


class P2PManager:
    def __init__(
        self,
        passport: str,
        link: P2PLink,
        emit: Callable[[object], None],
        *,
        pictures: PictureCache | None = None,
        window: int = DEFAULT_WINDOW,
        answer_timeout: float = 120.0,
        ack_timeout: float = 60.0,
        max_object: int = MAX_OBJECT,
        max_incoming: int = 16,
        data_timeout: float = 120.0,
        offer_timeout: float = 24 * 3600.0,
    ) -> None:
        self.passport = passport.lower()
        self.sender = MessageSender(link, window, ack_timeout)
        self._send_message = self.sender.send
        self.emit = emit
        self.pictures = pictures if pictures is not None else PictureCache()
        self.answer_timeout = answer_timeout
        self.max_object = max_object
        self.max_incoming = max_incoming  # offers and incoming transfers open at once
        self.data_timeout = data_timeout  # an accepted transfer without data this long fails
        self.offer_timeout = offer_timeout  # an offer nobody answers this long is dropped
        self.own_objects: dict[str, tuple[MSNObject, bytes]] = {}  # by SHA1D: what we serve
        self._picture: str | None = None  # SHA1D of the display picture among them
        self._sessions: dict[tuple[str, int], Session] = {}
        self._calls: dict[str, Session] = {}
        self._slp_in: dict[tuple[str, int], bytearray] = {}  # v1: by message id
        self._slp_in_v2: dict[tuple[str, int], bytearray] = {}  # v2: by package number
        self._tasks: set[asyncio.Task[object]] = set()
        # Whether we may use the v2 framing at all (MSNP16+ and announced by us), and
        # whether a contact announces it; set by the client.
        self.own_v2: Callable[[], bool] = lambda: False
        self.peer_v2: Callable[[str], bool] = lambda peer: False
        self._framing_seen: dict[str, int] = {}  # the framing each contact last used
        self.sender.framing = self.framing_for

    def peer_gone(self, peer: str) -> None:
        """``peer`` signed out: its next client may frame differently and needs our SYN."""
        self._framing_seen.pop(peer, None)
        self.sender.forget_peer(peer)

    def framing_for(self, peer: str) -> int:
        """The P2P framing (1 or 2) to use with ``peer``."""
        if not self.own_v2():
            return 1
        seen = self._framing_seen.get(peer)
        if seen is not None:
            return seen
        return 2 if self.peer_v2(peer) else 1

    # --- ids and tasks ---

    @property
    def window(self) -> int:
        """Chunks written but not yet confirmed by the server, at most (flow control)."""
        return self.sender.window

    @window.setter
    def window(self, value: int) -> None:
        self.sender.window = max(1, value)

    def _new_id(self) -> int:
        return self.sender.new_id()

    def _new_session_id(self, peer: str) -> int:
        while True:
            sid = random.randint(10, 2**31 - 1)
            if (peer, sid) not in self._sessions:
                return sid

    def _spawn(self, coro: Awaitable[object]) -> asyncio.Task[object]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _register(self, session: Session) -> None:
        self._sessions[(session.peer, session.session_id)] = session
        self._calls[session.call_id] = session

    def forget(self, session: Session) -> None:
        if self._sessions.get((session.peer, session.session_id)) is session:
            del self._sessions[(session.peer, session.session_id)]
        if self._calls.get(session.call_id) is session:
            del self._calls[session.call_id]

    async def close(self, reason: str = "the client stopped") -> None:
        for session in list(self._sessions.values()):
            if isinstance(session, Transfer):
                session.on_link_lost(reason)
            elif isinstance(session, _ObjectFetch):
                session.fail(reason)
            self.forget(session)
        self.sender.close()
        for task in list(self._tasks):
            task.cancel()

    # --- the own picture ---

    def set_own_object(self, obj: MSNObject | None, data: bytes | None) -> None:
        """The display picture served to contacts who ask for it (None: none)."""
        if self._picture is not None:
            self.own_objects.pop(self._picture, None)
        self._picture = None
        if obj is not None and data is not None:
            self.serve_object(obj, data)
            self._picture = obj.sha1d

    def serve_object(self, obj: MSNObject, data: bytes) -> None:
        """Serve ``data`` (a custom emoticon, say) to contacts who ask for ``obj``."""
        if not obj.matches(data):
            raise ValueError("the data does not match the MSNObject's size and SHA1D")
        self.own_objects[obj.sha1d] = (obj, data)

    # --- receiving ---

    def feed(self, sender: str, payload: bytes) -> None:
        """One ``application/x-msnmsgrp2p`` payload from ``sender``."""
        expected = self.framing_for(sender)
        framings = (expected, 3 - expected) if self.own_v2() else (1,)
        try:
            dest, frame = parse_payload(payload, framings)
        except (P2PFormatError, ValueError) as e:
            log.info("p2p: unreadable payload from %s: %s", sender, e)
            return
        if dest and dest != self.passport:
            return  # a group switchboard: meant for someone else
        if isinstance(frame, FrameV2):
            self._framing_seen[sender] = 2
            self._feed_v2(sender, frame)
            return
        if self.own_v2():
            self._framing_seen[sender] = 1
        h = frame.header
        if h.flags & Flags.ACK:
            self.sender.acked(sender, h.ack_id)
            return
        if h.session_id == 0:
            self._feed_slp(sender, h, frame.data)
            return
        session = self._sessions.get((sender, h.session_id))
        if session is None:
            return  # a session we ended: its last chunks are still arriving
        if isinstance(session, _ObjectFetch) and h.flags == Flags.NONE and h.total_size == 4:
            pass  # the data preparation message
        else:
            self._feed_data(session, h.offset, h.total_size, h.flags, frame.data)
        if h.last_chunk:
            self._ack(sender, h)

    def _feed_v2(self, sender: str, f: FrameV2) -> None:
        acked = f.ack_of
        if acked is not None:
            self.sender.acked(sender, acked, 2)
        if f.has_data_header:
            if f.session_id == 0:
                self._feed_slp_v2(sender, f)
            else:
                session = self._sessions.get((sender, f.session_id))
                # Only data frames carry data; the rest (the data preparation message)
                # are acknowledged if asked, and skipped.
                if session is not None and f.tf & ~TF.FIRST in (TF.MSNOBJ, TF.FILE):
                    # v2 has no offsets: the data continues where the session stands.
                    if isinstance(session, _ObjectFetch):
                        done = len(session.buf)
                    else:
                        done = session.done if isinstance(session, Transfer) else 0
                    total = done + len(f.data) + f.remaining
                    self._feed_data(session, done, total, f.tf, f.data)
        # Acknowledged after the data is written: an ack of the last frame tells the
        # sender everything arrived.
        if f.opcode & OpCode.RAK:
            self._ack_v2(sender, f)

    def _feed_slp_v2(self, sender: str, f: FrameV2) -> None:
        key = (sender, f.package)
        if f.tf & TF.FIRST:
            self._slp_in_v2.pop(key, None)
            if sum(1 for k in self._slp_in_v2 if k[0] == sender) >= MAX_PARTIAL_SLP:
                log.info("p2p: too many partial SLP messages from %s", sender)
                return
            buf = self._slp_in_v2[key] = bytearray()
        else:
            found = self._slp_in_v2.get(key)
            if found is None:
                return  # its start was lost or refused
            buf = found
        if len(buf) + len(f.data) + f.remaining > slp.MAX_SLP:
            del self._slp_in_v2[key]
            log.info("p2p: %s sent an SLP message over %d bytes: dropped", sender, slp.MAX_SLP)
            return
        buf += f.data
        if f.remaining:
            return
        del self._slp_in_v2[key]
        try:
            msg = parse_slp(bytes(buf))
        except SLPError as e:
            log.info("p2p: bad SLP message from %s: %s", sender, e)
            return
        self._on_slp(sender, msg)

    def _ack_v2(self, peer: str, f: FrameV2) -> None:
        """Acknowledge a v2 frame: the sequence number just past it. A SYN with data is
        answered with our own SYN and its peer info, as Messenger does."""
        ack = FrameV2(
            tlvs=[(TLV_ACK, ((f.sequence + f.message_size) & 0xFFFFFFFF).to_bytes(4, "big"))],
            has_data_header=False,
        )
        info = f.tlv(TLV_PEER_INFO)
        if f.opcode & OpCode.SYN and f.has_data_header and f.ack_of is None:
            ack.opcode = OpCode.SYN | OpCode.RAK
            if info is not None:
                ack.tlvs.insert(0, (TLV_PEER_INFO, info))
            self.sender.v2_peer(peer).synced = True
        self._post(peer, ack)

    def _feed_slp(self, sender: str, h: Header, data: bytes) -> None:
        key = (sender, h.id)
        if h.total_size > slp.MAX_SLP:
            log.info("p2p: %s sent an SLP message of %d bytes: dropped", sender, h.total_size)
            return
        buf = self._slp_in.get(key)
        if buf is None:
            if h.offset != 0:
                return
            if sum(1 for k in self._slp_in if k[0] == sender) >= MAX_PARTIAL_SLP:
                log.info("p2p: too many partial SLP messages from %s", sender)
                return
            buf = self._slp_in[key] = bytearray()
        if h.offset != len(buf):
            del self._slp_in[key]
            return
        buf += data
        if not h.last_chunk:
            return
        del self._slp_in[key]
        self._ack(sender, h)
        try:
            msg = parse_slp(bytes(buf))
        except SLPError as e:
            log.info("p2p: bad SLP message from %s: %s", sender, e)
            return
        self._on_slp(sender, msg)

    def _feed_data(
        self, session: Session, offset: int, total: int, flags: int, data: bytes
    ) -> None:
        if isinstance(session, _ObjectFetch):
            if total != session.obj.size or offset != len(session.buf):
                self._end_fetch(session, "the picture data does not match its object")
                return
            session.buf += data
            if offset + len(data) >= total:
                whole = bytes(session.buf)
                if not session.obj.matches(whole):
                    self._end_fetch(session, "the data does not match the object's SHA1D")
                    return
                self._end_fetch(session, None, whole)
        elif isinstance(session, Transfer):
            try:
                session.on_data(offset, total, flags, data)
            except TransferError as e:
                log.info("p2p: %s", e)

    def _ack(self, peer: str, h: Header) -> None:
        ack = Header(
            session_id=h.session_id,
            id=self._new_id(),
            total_size=h.total_size,
            flags=Flags.ACK,
            ack_id=h.id,
            ack_uid=h.ack_id,
            ack_size=h.total_size,
        )
        self._post(peer, Frame(ack, b"", 0))

    def _post(self, peer: str, frame: Frame | FrameV2) -> None:
        """Queue a single-frame message; failures are only logged (the peer will time out)."""
        self._spawn(self._post_checked(self.sender.post_frame(peer, frame)))

    @staticmethod
    async def _post_checked(result: Awaitable[DeliveryResult]) -> None:
        outcome = await result
        if not outcome.ok:
            log.info("p2p: a control message was not delivered: %s", outcome.reason)

    # --- SLP ---

    def _on_slp(self, sender: str, msg: SLPMessage) -> None:
        if msg.status is not None:
            session = self._calls.get(msg.call_id)
            if isinstance(session, Transfer):
                session.on_response(msg)
            elif isinstance(session, _ObjectFetch) and msg.status != 200:
                self._end_fetch(session, f"the contact answered {msg.status} {msg.reason}")
            return
        if msg.method == "BYE":
            session = self._calls.get(msg.call_id)
            if isinstance(session, Transfer):
                session.on_bye()
            elif isinstance(session, _ObjectFetch):
                self._end_fetch(session, "the contact ended the session")
            elif session is not None:
                self.forget(session)
            return
        if msg.method != "INVITE":
            return  # ACK: only for direct connections, which we do not make
        if msg.recipient and msg.recipient != self.passport:
            return
        if msg.content_type == slp.CT_TRANSFER_REQUEST:
            # The peer proposes a direct connection: say we do not listen, so the data
            # stays on the switchboard (what clients without direct connections answer).
            answer = slp.response(msg, 200, "OK", slp.NO_DIRECT_CONNECTION)
            answer.headers = [
                (k, slp.CT_TRANSFER_RESPONSE if k == "Content-Type" else v)
                for k, v in answer.headers
            ]
            self._send_slp(sender, answer)
            return
        sid = msg.session_id
        guid = msg.field("EUF-GUID").upper()
        app_id = msg.field("AppID")
        if sid is None or msg.content_type != slp.CT_SESSION_REQUEST:
            self._send_slp(sender, slp.response(msg, 500, "Internal Error", {"SessionID": "0"}))
            return
        if guid == slp.EUF_MSNOBJ:
            self._serve_object(sender, sid, msg)
        elif guid == slp.EUF_FILE:
            self._offer_received(sender, sid, msg)
        else:
            self._send_slp(sender, slp.response(msg, 603, "Decline", {"SessionID": str(sid)}))
            self.emit(P2PInvitationDeclined(sender, guid, int(app_id) if app_id.isdigit() else 0))

    def _send_slp(self, peer: str, msg: SLPMessage) -> None:
        """Queue an SLP message we need not wait for (answers, BYEs); a failure is logged:
        the peer's own timeout ends its side."""
        self._spawn(self._send_quietly(peer, msg))

    async def _send_quietly(self, peer: str, msg: SLPMessage) -> None:
        try:
            await self._send_message(peer, 0, msg.build(), 0, 0)
        except TransferError as e:
            what = msg.method or msg.status
            log.info("p2p: %s %s to %s not sent: %s", what, msg.call_id, peer, e)

    def _decode_context(self, msg: SLPMessage) -> bytes:
        try:
            return base64.b64decode(msg.field("Context"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the Context is not base64") from None

    # --- serving our objects ---

    def _serve_object(self, peer: str, sid: int, msg: SLPMessage) -> None:
        try:
            text = self._decode_context(msg).decode("utf-8").rstrip("\x00")
            wanted = parse_msnobject(text)
        except (ValueError, UnicodeDecodeError, InvalidMSNObject) as e:
            log.info("p2p: %s asked for an unreadable object: %s", peer, e)
            self._send_slp(peer, slp.response(msg, 603, "Decline", {"SessionID": str(sid)}))
            return
        found = self.own_objects.get(wanted.sha1d)
        if found is None:
            self._send_slp(peer, slp.response(msg, 603, "Decline", {"SessionID": str(sid)}))
            return
        session = _ObjectServe(peer, sid, msg)
        self._register(session)
        self._send_slp(peer, slp.response(msg, 200, "OK", {"SessionID": str(sid)}))
        self._spawn(self._serve_data(session, found[1]))

    async def _serve_data(self, session: _ObjectServe, data: bytes) -> None:
        peer, sid = session.peer, session.session_id
        try:
            await self._send_message(peer, sid, b"\x00" * 4, Flags.NONE, slp.APP_MSNOBJ)
            await self._send_message(
                peer, sid, data, Flags.MSNOBJ_DATA, slp.APP_MSNOBJ, wait_ack=True
            )
        except (TransferError, TimeoutError) as e:
            log.info("p2p: serving our picture to %s failed: %s", peer, e)
        finally:
            self.forget(session)

    # --- fetching contacts' objects ---

    async def fetch_object(self, peer: str, obj: MSNObject, timeout: float = 60.0) -> bytes:
        """The data of ``obj`` from ``peer`` (checked against its SHA1D); cached."""
        return await self.pictures.get_or_fetch(obj, lambda: self._fetch(peer, obj, timeout))

    async def fetch_picture(self, peer: str, obj: MSNObject, timeout: float = 60.0) -> bytes:
        """Fetch a contact's display picture and announce it (DisplayPictureReceived)."""
        data = await self.fetch_object(peer, obj, timeout)
        self.emit(DisplayPictureReceived(peer.lower(), obj, data))
        return data

    async def _fetch(self, peer: str, obj: MSNObject, timeout: float) -> bytes:
        peer = peer.lower()
        if obj.size > self.max_object:
            raise ObjectFetchError(f"an object of {obj.size} bytes is over {self.max_object}")
        session = _ObjectFetch(peer, self._new_session_id(peer), obj)
        self._register(session)
        context = base64.b64encode(obj.build().encode() + b"\x00").decode()
        invite = slp.request(
            "INVITE",
            peer,
            self.passport,
            call_id=session.call_id,
            branch=session.branch,
            body={
                "EUF-GUID": slp.EUF_MSNOBJ,
                "SessionID": str(session.session_id),
                "AppID": str(slp.APP_MSNOBJ),
                "Context": context,
            },
        )
        try:
            await self._send_message(peer, 0, invite.build(), 0, 0)
            return await asyncio.wait_for(asyncio.shield(session.result), timeout)
        except TransferError as e:
            raise ObjectFetchError(f"could not ask {peer} for it: {e}") from None
        except TimeoutError:
            self._end_fetch(session, "timed out")
            raise ObjectFetchError(f"{peer} did not send the picture in {timeout:g} s") from None
        finally:
            self.forget(session)

    def _end_fetch(self, session: _ObjectFetch, error: str | None, data: bytes = b"") -> None:
        if session.result.done():
            return
        self.forget(session)
        self._bye(session.peer, session.session_id, session.call_id, session.branch)
        if error is None:
            session.result.set_result(data)
        else:
            session.fail(error)

    # --- files ---

    def _offer_received(self, peer: str, sid: int, msg: SLPMessage) -> None:
        try:
            ctx = FileContext.parse(self._decode_context(msg))
        except (ValueError, FileContextError) as e:
            log.info("p2p: %s offered a file with a bad context: %s", peer, e)
            self._send_slp(peer, slp.response(msg, 603, "Decline", {"SessionID": str(sid)}))
            return
        waiting = sum(1 for s in self._sessions.values() if isinstance(s, IncomingFile))
        if waiting >= self.max_incoming:
            log.info("p2p: %s offered a file while %d are open: declined", peer, waiting)
            self._send_slp(peer, slp.response(msg, 603, "Decline", {"SessionID": str(sid)}))
            return
        transfer = IncomingFile(self, peer, sid, msg, ctx.name, ctx.size, ctx.preview)
        transfer.branch = msg.branch
        self._register(transfer)
        self._spawn(self._watch_incoming(transfer))
        self.emit(FileOffered(peer, ctx.name, ctx.size, ctx.preview, transfer))

    async def _watch_incoming(self, t: IncomingFile) -> None:
        """End an incoming transfer whose data stopped (the sender vanished): no offer or
        half-written file waits forever."""
        loop = asyncio.get_running_loop()
        while not t.finished:
            limit = self.data_timeout if t.accepted else self.offer_timeout
            idle = loop.time() - t.last_activity
            if idle >= limit:
                what = "no data" if t.accepted else "no answer to the offer"
                self.send_bye(t)
                t._finish("timed out", f"{what} for {limit:g} s")
                return
            await asyncio.sleep(min(limit - idle, 5.0) + 0.01)

    def answer_invite(self, transfer: IncomingFile, status: int, reason: str) -> None:
        body = {"SessionID": str(transfer.session_id)}
        self._send_slp(transfer.peer, slp.response(transfer.invite, status, reason, body))

    def send_bye(self, session: Transfer) -> None:
        self._bye(session.peer, session.session_id, session.call_id, session.branch)

    def _bye(self, peer: str, sid: int, call_id: str, branch: str) -> None:
        bye = slp.request(
            "BYE",
            peer,
            self.passport,
            call_id=call_id,
            branch=branch or None,
            content_type=slp.CT_SESSION_CLOSE,
            body={"SessionID": str(sid)},
        )
        self._send_slp(peer, bye)

    def send_file(
        self,
        peer: str,
        source: str | Path | AsyncIterable[bytes],
        *,
        name: str | None = None,
        size: int | None = None,
        preview: bytes = b"",
        answer_timeout: float | None = None,
    ) -> OutgoingFile:
        """Offer a file; returns at once. ``await transfer.wait()`` gives the outcome.

        ``source`` is a path (read as it goes) or an async iterable of bytes (``name`` and
        ``size`` required). The transfer is ``completed`` once the contact acknowledged
        the last byte.
        """
        peer = peer.lower()
        if isinstance(source, str | Path):
            path = Path(source)
            size = path.stat().st_size if size is None else size
            name = name or path.name
        elif size is None or name is None:
            raise ValueError("an async byte source needs a name and a size")
        transfer = OutgoingFile(self, peer, self._new_session_id(peer), name, size)
        transfer.call_id, transfer.branch = slp.new_guid(), slp.new_guid()
        self._register(transfer)
        timeout = self.answer_timeout if answer_timeout is None else answer_timeout
        transfer.task = asyncio.get_running_loop().create_task(
            self._run_send(transfer, source, preview, timeout), name=f"p2p-send:{peer}"
        )
        return transfer

    async def _run_send(
        self,
        t: OutgoingFile,
        source: str | Path | AsyncIterable[bytes],
        preview: bytes,
        timeout: float,
    ) -> None:
        ctx = FileContext(t.name, t.size, preview)
        invite = slp.request(
            "INVITE",
            t.peer,
            self.passport,
            call_id=t.call_id,
            branch=t.branch,
            body={
                "EUF-GUID": slp.EUF_FILE,
                "SessionID": str(t.session_id),
                "AppID": str(slp.APP_FILE),
                "Context": base64.b64encode(ctx.build()).decode(),
            },
        )
        try:
            await self._send_message(t.peer, 0, invite.build(), 0, 0)
            try:
                status = await asyncio.wait_for(asyncio.shield(t.answered), timeout)
            except TimeoutError:
                self.send_bye(t)
                t._finish("timed out", f"no answer within {timeout:g} s")
                return
            if status != 200:
                t._finish("declined", "the contact declined the file", by_peer=True)
                return
            chunks = read_path(Path(source)) if isinstance(source, str | Path) else source
            await self._send_message(
                t.peer,
                t.session_id,
                chunks,
                Flags.FILE_DATA,
                slp.APP_FILE,
                total=t.size,
                wait_ack=True,
                stop=t.stop,
                progress=t._progress,
                on_ack_future=t,
            )
            t._finish("completed", "the contact received every byte")
        except asyncio.CancelledError:
            if t.status == "completed":
                return
            if not t.finished:
                t._finish("cancelled", "cancelled")
            raise
        except (TransferError, TimeoutError, OSError) as e:
            if not t.finished:
                self.send_bye(t)
                t._finish("failed", str(e) or type(e).__name__)
