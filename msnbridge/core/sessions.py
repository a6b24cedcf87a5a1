"""One puppet MSN session per bridged user: log in, keep, restore at start-up, log out.

The password is stored encrypted (msnbridge.secrets, bound to the owner's ID) because every
TWN login needs it again; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mautrix.util.async_db import Database

from puppets import (
    AuthenticationError,
    Client,
    ClientConfig,
    MSNPError,
    SessionState,
    SignedOutElsewhere,
)
from puppets.event.session import SessionStateChanged
from puppets.msnobject import MSNObject
from puppets.p2p import PictureCache

from ..config import Config
from ..db import user as user_db
from ..db.user import Side, User
from ..metrics import Metrics
from ..secrets import SecretBox, SecretKeyError

log = logging.getLogger("msnbridge.sessions")

Listener = Callable[[str, object], None]  # (owner ID, puppet event)
ClientFactory = Callable[[ClientConfig], Client]


class LoginFailed(Exception):
    """Why a login did not succeed, worded for the user."""


def describe_login_error(error: BaseException | str | None) -> str:
    if isinstance(error, AuthenticationError):
        return "wrong passport or password"
    if isinstance(error, MSNPError):
        return f"the MSN server answered {error.code}: {error.meaning}"
    if isinstance(error, SignedOutElsewhere):
        return "signed in from another place"
    if isinstance(error, TimeoutError):
        return "the MSN server did not answer in time"
    return f"could not reach the MSN server ({error or 'connection lost'})"


class Sessions:
    def __init__(
        self,
        config: Config,
        db: Database,
        secrets: SecretBox,
        *,
        client_factory: ClientFactory = Client,
        login_timeout: float = 60.0,
    ) -> None:
        self.config = config
        self.db = db
        self.secrets = secrets
        self.client_factory = client_factory
        self.login_timeout = login_timeout
        self.listeners: list[Listener] = []
        self.metrics: Metrics | None = None
        self._clients: dict[str, Client] = {}
        self.pictures = PictureCache()  # display pictures by SHA1D, shared by all sessions
        # Set by the side showing pictures: whether a contact's announced picture is still
        # needed (not after a restart when it is shown already).
        self.picture_wanted: Callable[[str, MSNObject], Awaitable[bool]] | None = None
        # Logins restore() could not start, with why (the owners are told at start-up).
        self.unrestorable: dict[str, str] = {}

    def get(self, owner: str) -> Client | None:
        return self._clients.get(owner)

    def all(self) -> dict[str, Client]:
        """Every session, by owner (the admin `sessions` command, metrics)."""
        return dict(self._clients)

    def client_config(self, passport: str, password: str) -> ClientConfig:
        c = self.config
        return ClientConfig(
            passport=passport,
            password=password,
            dispatch_host=c["msn.dispatch_host"],
            dispatch_port=c["msn.dispatch_port"],
            nexus_url=c["msn.nexus_url"],
            login_url=c["msn.login_url"] or None,
            verify_tls=c["msn.verify_tls"],
            min_version=c["msn.min_version"],
            max_version=c["msn.max_version"],
            offline_send_timeout=float(c["msn.offline_send_timeout"]),
        )

    async def login(
        self,
        owner: str,
        side: Side,
        passport: str,
        password: str,
        management_room: str | None = None,
    ) -> Client:
        """Logs a puppet session in and stores the login; raises LoginFailed."""
        passport = passport.strip().lower()
        if (current := self._clients.get(owner)) is not None:
            raise LoginFailed(
                f"you are logged in as {current.config.passport} already; send 'logout' first"
            )
        holder = await user_db.get_by_passport(self.db, passport)
        if holder is not None and holder.id != owner:
            raise LoginFailed(f"{passport} is bridged for someone else already")
        try:
            client = self.client_factory(self.client_config(passport, password))
        except ValueError as e:
            raise LoginFailed(str(e)) from None
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def first_outcome(event: object) -> None:
            # The supervisor keeps retrying network failures; a login wants the first answer.
            if first.done() or not isinstance(event, SessionStateChanged):
                return
            if event.state is SessionState.ONLINE:
                first.set_result(None)
            elif event.state in (SessionState.STOPPED, SessionState.BACKING_OFF):
                first.set_exception(
                    LoginFailed(describe_login_error(client.error or client.last_error))
                )

        client.add_listener(first_outcome)
        # Adopted before it starts: the login's own events (contact list, presence burst)
        # must reach the listeners too. A failed login is dropped again below.
        forward = self._adopt(owner, client)
        await client.start()
        try:
            await asyncio.wait_for(first, self.login_timeout)
        except BaseException as e:
            if self._clients.get(owner) is client:
                del self._clients[owner]
            client.remove_listener(forward)
            await client.stop()
            if self.metrics is not None and not isinstance(e, asyncio.CancelledError):
                self.metrics.login_failed(client.error or client.last_error or e)
            if isinstance(e, TimeoutError):
                raise LoginFailed(describe_login_error(e)) from None
            raise
        finally:
            client.remove_listener(first_outcome)
        stored = await user_db.get(self.db, owner) or User(owner, side)
        stored.passport = passport
        stored.password = self.secrets.encrypt(password, context=owner)
        stored.state = "logged_in"
        stored.management_room = management_room or stored.management_room
        await user_db.save(self.db, stored)
        if self.metrics is not None:
            self.metrics.login_ok()
        log.info("%s logged in to MSN as %s (MSNP%s)", owner, passport, client.protocol)
        return client

    async def logout(self, owner: str) -> bool:
        """Signs the session out and forgets the password; False if there was none."""
        client = self._clients.pop(owner, None)
        if client is not None:
            await client.stop()
        stored = await user_db.get(self.db, owner)
        if stored is not None:
            stored.passport, stored.password, stored.state = None, None, "logged_out"
            await user_db.save(self.db, stored)
        return client is not None

    async def restore(self) -> int:
        """Starts the sessions of every stored login (at start-up); returns how many."""
        started = 0
        for stored in await user_db.get_all(self.db, with_login=True):
            assert stored.passport is not None and stored.password is not None
            try:
                password = self.secrets.decrypt(stored.password, context=stored.id)
            except SecretKeyError as e:
                log.warning("Cannot restore the MSN session of %s: %s", stored.id, e)
                self.unrestorable[stored.id] = str(e)
                stored.state = "needs_login"
                await user_db.save(self.db, stored)
                continue
            client = self.client_factory(self.client_config(stored.passport, password))
            self._adopt(stored.id, client)
            await client.start()
            started += 1
        return started

    async def stop(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        results = await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        for client, result in zip(clients, results, strict=True):
            if isinstance(result, Exception):
                log.warning("Stopping the session of %s failed: %s", client.config.passport, result)

    def _adopt(self, owner: str, client: Client) -> Callable[[object], None]:
        self._clients[owner] = client
        if owner.startswith("@"):  # Matrix shows contacts' pictures as ghost avatars
            client.p2p.manager.pictures = self.pictures  # one fetch per picture for all
            client.p2p.auto_fetch_pictures = True
            client.p2p.picture_wanted = self.picture_wanted

        def forward(event: object) -> None:
            self._forward(owner, event)

        client.add_listener(forward)
        return forward

    def _forward(self, owner: str, event: object) -> None:
        for listener in self.listeners:
            try:
                listener(owner, event)
            except Exception:
                log.exception("Listener failed on %s for %s", type(event).__name__, owner)
