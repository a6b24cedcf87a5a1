"""MSNPTestServer: the public API the client tests and benchmarks drive (start/stop on
stable ports, accounts and lists, server-side presence, fault injection, counters)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from aiohttp import web

from . import faults, offline
from .accounts import Account, Group
from .framing import payload_line
from .hub import Hub, ServerConfig
from .link import Link
from .notification import NotificationSession
from .passport import make_app
from .presence import psm_payload
from .stats import ServerStats
from .switchboard import SBConnection, SwitchboardServer


class MSNPTestServer:
    def __init__(
        self,
        versions: tuple[int, int] = (2, 12),
        send_chl: bool = True,
        chl_interval: float | None = None,
        ticket_ttl: float = 30.0,
        redirect: bool = True,
        send_nak: bool = True,
        qng_interval: int = 50,
        idle_timeout: float | None = None,
        host: str = "127.0.0.1",
        initial_mail: bool = False,
        dispatch_port: int = 0,
        ns_port: int = 0,
        sb_port: int = 0,
        http_port: int = 0,
        http_ssl: ssl.SSLContext | None = None,
        token_ttl: float = 86400.0,
        mpop: bool = True,
    ) -> None:
        self.config = ServerConfig(
            host=host,
            versions=versions,
            send_chl=send_chl,
            chl_interval=chl_interval,
            ticket_ttl=ticket_ttl,
            redirect=redirect,
            send_nak=send_nak,
            qng_interval=qng_interval,
            idle_timeout=idle_timeout,
            initial_mail=initial_mail,
            token_ttl=token_ttl,
            mpop=mpop,
        )
        self.hub = Hub(self.config)
        self.hub.switchboards = SwitchboardServer(self.hub)
        self.host = host
        self.dispatch_port = dispatch_port
        self.ns_port = ns_port
        self.sb_port = sb_port
        self.http_port = http_port
        self.http_ssl = http_ssl  # serve the Nexus and login over HTTPS with this context
        self._servers: list[asyncio.Server] = []
        self._links: set[Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------------
    @property
    def stats(self) -> ServerStats:
        return self.hub.stats

    @property
    def nexus_url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.http_port}/rdr/pprdr.asp"

    @property
    def login_url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.http_port}/login2.srf"

    @property
    def _scheme(self) -> str:
        return "https" if self.http_ssl is not None else "http"

    @property
    def services_url(self) -> str:
        """MSNP13-18: the base of every SOAP service (RST, address book, sharing, OIM, RSI)."""
        return f"{self._scheme}://{self.host}:{self.http_port}"

    def addresses(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "dispatch_port": self.dispatch_port,
            "ns_port": self.ns_port,
            "sb_port": self.sb_port,
            "http_port": self.http_port,
            "nexus_url": self.nexus_url,
            "login_url": self.login_url,
            "services_url": self.services_url,
        }

    async def _listen(self, factory: Any, port: int) -> tuple[asyncio.Server, int]:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            link = factory(reader, writer)
            self._links.add(link)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await link.run()
            finally:
                self._links.discard(link)
                if task is not None:
                    self._tasks.discard(task)

        server = await asyncio.start_server(
            accept, self.host, port, limit=16 * 1024, backlog=4096, reuse_address=True
        )
        return server, server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind all four services; after a stop() the same ports are bound again."""
        hub = self.hub
        # The ports go into the hub first so redirects and XFRs name the right place.
        sb, self.sb_port = await self._listen(lambda r, w: SBConnection(hub, r, w), self.sb_port)
        ns, self.ns_port = await self._listen(
            lambda r, w: NotificationSession(hub, r, w), self.ns_port
        )
        dispatch, self.dispatch_port = await self._listen(
            lambda r, w: NotificationSession(hub, r, w, dispatch=True), self.dispatch_port
        )
        self._servers = [sb, ns, dispatch]
        runner = web.AppRunner(make_app(hub), access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.http_port, reuse_address=True, ssl_context=self.http_ssl
        )
        await site.start()
        self._runner = runner
        self.http_port = runner.addresses[0][1]
        hub.ns_port, hub.sb_port, hub.http_port = self.ns_port, self.sb_port, self.http_port

    async def stop(self, graceful: bool = False) -> None:
        """Close every connection (``OUT SSD`` first when graceful) and unbind."""
        for server in self._servers:
            server.close()
        for link in list(self._links):
            if graceful and isinstance(link, NotificationSession):
                link.shutdown()
            else:
                link.close("shutdown")
        assert self.hub.switchboards is not None
        self.hub.switchboards.close_all("shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for session in list(self.hub.ns.values()):
            session.detach()

    async def __aenter__(self) -> MSNPTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- accounts -----------------------------------------------------------------
    def add_account(self, passport: str, password: str, nick: str | None = None) -> Account:
        return self.hub.directory.add_account(passport, password, nick)

    def account(self, passport: str) -> Account:
        return self.hub.directory[passport]

    def add_group(self, passport: str, name: str) -> str:
        """The group's MSNP7-9 number as a string; the Group (with its MSNP10+ guid) is
        ``group(passport, name)``."""
        return str(self.hub.directory.add_group(passport, name).id)

    def group(self, passport: str, name: str) -> Group:
        group = self.account(passport).group_by_ref(name)
        if group is None:
            raise KeyError(name)
        return group

    def add_contact(
        self,
        owner: str,
        contact: str,
        lists: tuple[str, ...] | list[str] = ("FL", "AL"),
        groups: tuple[str, ...] | list[str] = (),
        nick: str | None = None,
    ) -> None:
        self.hub.directory.add_contact(owner, contact, lists, groups, nick)

    # -- server-side changes --------------------------------------------------------
    def set_presence(
        self, passport: str, status: str, caps: int = 0, msnobj: str = "", ext_caps: int = 0
    ) -> None:
        """Change an account's status as if its (absent) client did; FLN = offline."""
        account = self.account(passport)
        before = self.hub.seen_by(account)
        account.status, account.caps, account.msnobj = status, caps, msnobj
        account.ext_caps = ext_caps
        self.hub.announce(account, before)

    def set_nick(self, passport: str, nick: str) -> None:
        account = self.account(passport)
        before = self.hub.seen_by(account)
        account.nick = nick
        self.hub.announce(account, before)

    def set_psm(self, passport: str, text: str, media: str = "") -> None:
        account = self.account(passport)
        account.psm = psm_payload(text, media)
        self.hub.announce_psm(account)

    def online_sessions(self, passport: str) -> int:
        return len(self.hub.sessions_of(passport))

    def endpoints(self, passport: str) -> dict[str, str]:
        """MSNP16+: machine GUID -> endpoint name of each signed-in endpoint."""
        return {s.machine_guid: s.ep_name for s in self.hub.sessions_of(passport)}

    # -- MSNP13-18 ------------------------------------------------------------------
    def add_oim(
        self, to: str, sender: str, text: str, sent_at: float, nick: str | None = None
    ) -> str:
        """Store an offline message for ``to`` as if ``sender`` had sent it at ``sent_at``;
        its id. A signed-in MSNP13+ recipient is told at once."""
        oim = offline.add_oim(self.hub, to, sender, nick or sender, text, sent_at)
        return oim.id

    def oims(self, passport: str) -> list[offline.StoredOIM]:
        return list(self.account(passport).oims)

    def expire_tokens(self, passport: str) -> None:
        """Make every SSO token of ``passport`` expired (the next use is refused)."""
        self.hub.sso_tokens.expire_all(passport.lower())

    def _session(self, passport: str) -> NotificationSession:
        session = self.hub.session(passport)
        if session is None:
            raise KeyError(f"{passport} is not signed in")
        return session

    async def inject(self, passport: str, raw: bytes) -> None:
        session = self._session(passport)
        session.push(raw)
        with contextlib.suppress(ConnectionError):
            await session.writer.drain()

    async def flood_presence(
        self,
        passport: str,
        count: int = 30_000,
        *,
        seconds: float = 3.0,
        batch: int = 1000,
        prefix: str = "stranger",
    ) -> int:
        """Fault: push ``count`` NLN lines for passports on none of ``passport``'s lists
        down its notification connection, in batches spread over about ``seconds``.
        Returns how many were written (fewer if the connection closed)."""
        session = self._session(passport)
        pause = seconds / max(1, count // batch)
        sent = 0
        while sent < count and not session.closed:
            n = min(batch, count - sent)
            session.push(
                b"".join(
                    faults.stranger_presence(session.version, i, prefix)
                    for i in range(sent, sent + n)
                )
            )
            sent += n
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            await asyncio.sleep(pause)
        return sent

    def send_invitation(
        self, passport: str, host: str, port: int, inviter: str, nick: str = "Inviter"
    ) -> None:
        """Fault: an RNG inviting ``passport`` into a switchboard at host:port, which need
        not be ours (a closed port, a dead host)."""
        self._session(passport).push(faults.invitation(host, port, inviter, nick))

    def hold_switchboard_requests(self, passport: str, held: bool = True) -> None:
        """Fault: while held, ``XFR SB`` from ``passport`` gets no answer (a message waits
        for its switchboard). Counted in ``stats.xfr_held``."""
        (self.hub.held_xfr.add if held else self.hub.held_xfr.discard)(passport.lower())

    def swallow_messages(self, passport: str, swallowed: bool = True) -> None:
        """Fault: while on, switchboard ``MSG``s from ``passport`` are read and dropped,
        neither relayed nor answered (ACK/NAK). Counted in ``stats.messages_swallowed``."""
        (self.hub.swallowed_msg.add if swallowed else self.hub.swallowed_msg.discard)(
            passport.lower()
        )

    async def kick(self, passport: str) -> None:
        session = self._session(passport)
        session.close("kicked", abort=True)
        await asyncio.sleep(0)

    def challenge(self, passport: str) -> None:
        """Send a CHL now (whatever send_chl says)."""
        self._session(passport).send_challenge()

    def send_system_message(self, passport: str, minutes: int) -> None:
        body = (
            "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\n"
            f"Type: 1\r\nArg1: {minutes}\r\n"
        ).encode()
        self._session(passport).push(payload_line("MSG", "Hotmail", "Hotmail", payload=body))

    def send_new_mail(self, passport: str, sender: str, address: str, subject: str) -> None:
        body = (
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/x-msmsgsemailnotification; charset=UTF-8\r\n\r\n"
            f"From: {sender}\r\n"
            "Message-URL: /cgi-bin/getmsg?msg=MSG1050451140.21&curmbox=ACTIVE\r\n"
            "Post-URL: http://www.hotmail.com\r\n"
            f"Subject: {subject}\r\nDest-Folder: ACTIVE\r\nFrom-Addr: {address}\r\nid: 2\r\n\r\n"
        ).encode()
        self.account(passport).inbox_unread += 1
        self._session(passport).push(payload_line("MSG", "Hotmail", "Hotmail", payload=body))
