"""One puppet MSN session per bridged user: log in, keep, restore at start-up, log out.

The password is stored encrypted (msnbridge.secrets, bound to the owner's ID) because every
TWN login needs it again; it is never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import aiohttp
from mautrix.util.async_db import Database

from puppets import (
    AuthenticationError,
    Client,
    ClientConfig,
    MSNPError,
    SessionState,
    SignedOutElsewhere,
)
from puppets.event.offline import OfflineMessageReceived
from puppets.event.session import SessionStateChanged
from puppets.msnobject import MSNObject
from puppets.p2p import PictureCache

from ..config import Config
from ..db import offline as offline_db
from ..db import user as user_db
from ..db.user import Side, User
from ..metrics import Metrics
from ..secrets import SecretBox, SecretKeyError
from .login_timing import RefusalTiming
from .outage import OutageWatch

log = logging.getLogger("msnbridge.sessions")

Listener = Callable[[str, object], None]  # (owner ID, puppet event)
OfflineAck = Callable[[str, Sequence[OfflineMessageReceived]], Awaitable[None]]  # (owner, …)
# Called as factory(config, http=shared aiohttp session), as `Client` itself takes them.
ClientFactory = Callable[..., Client]


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


def first_login_outcome(
    client: Client, failed: Callable[[str], Exception]
) -> tuple[asyncio.Future[None], Callable[[object], None]]:
    """A future for a login's first answer (online, or ``failed(why)``) and the listener
    that settles it: the supervisor keeps retrying network failures, a login does not."""
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def first_outcome(event: object) -> None:
        if first.done() or not isinstance(event, SessionStateChanged):
            return
        if event.state is SessionState.ONLINE:
            first.set_result(None)
        elif event.state in (SessionState.STOPPED, SessionState.BACKING_OFF):
            first.set_exception(failed(describe_login_error(client.error or client.last_error)))

    return first, first_outcome


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
        # The listeners' word that offline messages are stored (Client.offline_ack): only
        # then are they deleted on the MSN server.
        self.offline_ack: OfflineAck | None = None
        self.metrics: Metrics | None = None
        self._clients: dict[str, Client] = {}
        self.pictures = PictureCache()  # display pictures by SHA1D, shared by all sessions
        # Set by the side showing pictures: whether a contact's announced picture is still
        # needed (not after a restart when it is shown already).
        self.picture_wanted: Callable[[str, MSNObject], Awaitable[bool]] | None = None
        # Logins restore() could not start, with why (the owners are told at start-up).
        self.unrestorable: dict[str, str] = {}
        # Owners whose `login` is waiting for its first outcome: that command reports and
        # counts a failure, the session's STOPPED event must not do it a second time.
        self.logging_in: set[str] = set()
        # Their management rooms, for notices that come during the login (before it is stored).
        self.login_rooms: dict[str, str] = {}
        # Tells owners about a long reconnect (a ConnectionNotice event to the listeners).
        self.outages = OutageWatch(float(config["msn.outage_notice_after"]), self._forward)
        # Logins restore() signed out because their owner lost user rights (owner → passport).
        self.not_allowed: dict[str, str] = {}
        # Owners whose stored login is about to be restored (set at start-up before the
        # sides listen, so their events wait for the session instead of failing).
        self._restoring: dict[str, asyncio.Event] = {}
        self._http: aiohttp.ClientSession | None = None
        self.refusals = RefusalTiming()  # a local "wrong password" takes as long as MSN's

    @property
    def http(self) -> aiohttp.ClientSession:
        """One HTTP client for every session's Passport and SOAP requests (MSNP13+ would
        otherwise keep one per account, ~11 KiB each). Without a cookie jar: accounts must
        not share cookies. Without a connection limit, as separate clients had none between
        them; each request carries its own timeout."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                # Passport's TWN requests carry none of their own: ClientConfig's default.
                timeout=aiohttp.ClientTimeout(total=30.0),
            )
        return self._http

    def get(self, owner: str) -> Client | None:
        return self._clients.get(owner)

    def all(self) -> dict[str, Client]:
        """Every session, by owner (the admin `sessions` command, metrics)."""
        return dict(self._clients)

    def report_states(self) -> None:
        """The session gauge from the sessions there are: a failed login or a logout
        leaves none behind (not even a "stopped" one)."""
        if self.metrics is not None:
            counts: dict[str, int] = {}
            for client in self._clients.values():
                counts[client.state.value] = counts.get(client.state.value, 0) + 1
            self.metrics.set_sessions(counts)

    @property
    def offline_send_timeout(self) -> float:
        return float(self.config["msn.offline_send_timeout"])

    def client_config(
        self, passport: str, password: str, machine_guid: str | None = None
    ) -> ClientConfig:
        c = self.config
        urls = ("services_url", "rst_url", "abch_url", "sharing_url", "oim_url", "rsi_url")
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
            endpoint_name=c["msn.endpoint_name"],
            machine_guid=machine_guid,
            **{name: c[f"msn.{name}"] or None for name in urls},
        )

    async def login(
        self,
        owner: str,
        side: Side,
        passport: str,
        password: str,
        management_room: str | None = None,
    ) -> Client:
        """Logs a puppet session in and stores the login; raises LoginFailed (logged with
        the passport and the reason, never the password)."""
        passport = passport.strip().lower()
        try:
            return await self._login(owner, side, passport, password, management_room)
        except LoginFailed as e:
            log.warning("%s could not log in to MSN as %s: %s", owner, passport, e)
            raise

    async def _login(
        self,
        owner: str,
        side: Side,
        passport: str,
        password: str,
        management_room: str | None,
    ) -> Client:
        started = time.monotonic()
        await self._refuse_if_taken(owner, passport, password, started)
        known = await user_db.get(self.db, owner)
        # The same endpoint as before for the same account (MSNP16+ MPOP).
        guid = known.machine_guid if known is not None and known.passport == passport else None
        try:
            client = self.client_factory(
                self.client_config(passport, password, guid), http=self.http
            )
        except ValueError as e:
            raise LoginFailed(str(e)) from None
        await self._seed_offline(owner, client)
        if management_room:
            # What MSN says during the login (unread mail) goes there; stored only after it.
            self.login_rooms[owner] = management_room
        first, first_outcome = first_login_outcome(client, LoginFailed)
        client.add_listener(first_outcome)
        # Adopted before it starts: the login's own events (contact list, presence burst)
        # must reach the listeners too. A failed login is dropped again below.
        forward = self._adopt(owner, client)
        self.logging_in.add(owner)
        await client.start()
        try:
            await asyncio.wait_for(first, self.login_timeout)
        except BaseException as e:
            self.login_rooms.pop(owner, None)
            if self._clients.get(owner) is client:
                del self._clients[owner]
                self.report_states()
                self.outages.forget(owner)
            client.remove_listener(forward)
            await client.stop()
            if self.metrics is not None and not isinstance(e, asyncio.CancelledError):
                self.metrics.login_failed(client.error or client.last_error or e)
            if isinstance(client.error or client.last_error, AuthenticationError):
                self.refusals.observe_refusal(time.monotonic() - started)
            if isinstance(e, TimeoutError):
                raise LoginFailed(describe_login_error(e)) from None
            raise
        finally:
            client.remove_listener(first_outcome)
            self.logging_in.discard(owner)
        stored = await user_db.get(self.db, owner) or User(owner, side)
        stored.passport = passport
        stored.password = self.secrets.encrypt(password, context=owner)
        stored.state = "logged_in"
        stored.machine_guid = client.machine_guid
        stored.management_room = management_room or stored.management_room
        await user_db.save(self.db, stored)
        self.login_rooms.pop(owner, None)  # stored now
        self.refusals.observe_login(time.monotonic() - started)
        if self.metrics is not None:
            self.metrics.login_ok()
        log.info("%s logged in to MSN as %s (MSNP%s)", owner, passport, client.protocol)
        return client

    async def _refuse_if_taken(
        self, owner: str, passport: str, password: str, started: float
    ) -> None:
        """Raises LoginFailed when the owner has a session already, or the passport is
        bridged for someone else."""
        if (current := self._clients.get(owner)) is not None:
            raise LoginFailed(
                f"you are logged in as {current.config.passport} already; send 'logout' first"
            )
        holder = await user_db.get_by_passport(self.db, passport)
        if holder is not None and holder.id != owner:
            # Only someone who knows the password learns that the account is bridged:
            # anyone else gets the answer of a wrong password, as late as MSN gives it.
            if not self._stored_password_is(holder, password):
                if self.metrics is not None:
                    self.metrics.login_failed("auth")
                await self.refusals.wait_like_msn(started)
                raise LoginFailed(describe_login_error(AuthenticationError()))
            raise LoginFailed(f"{passport} is bridged for someone else already")

    def _stored_password_is(self, holder: User, password: str) -> bool:
        if holder.password is None:
            return False
        try:
            stored = self.secrets.decrypt(holder.password, context=holder.id)
        except SecretKeyError:
            return False
        return hmac.compare_digest(stored.encode(), password.encode())

    async def stored_login(self, owner: str) -> User | None:
        """The owner's stored login (passport and encrypted password), if any."""
        stored = await user_db.get(self.db, owner)
        return stored if stored is not None and stored.passport is not None else None

    async def owns_login(self, owner: str) -> bool:
        """Whether the owner has a session or a stored login (logout and status are theirs
        whatever their rights)."""
        return owner in self._clients or await self.stored_login(owner) is not None

    async def logout(self, owner: str) -> bool:
        """Signs the session out and forgets the password; False if there was none."""
        client = self._clients.pop(owner, None)
        self.outages.forget(owner)
        if client is not None:
            await client.stop()
            self.report_states()
        stored = await user_db.get(self.db, owner)
        had_login = stored is not None and (stored.passport or stored.password) is not None
        if stored is not None:
            stored.passport, stored.password, stored.state = None, None, "logged_out"
            await user_db.save(self.db, stored)
        return client is not None or had_login

    async def expect_restore(self) -> None:
        """Before the sides take events: note whose sessions restore() will start."""
        for stored in await user_db.get_all(self.db, with_login=True):
            self._restoring.setdefault(stored.id, asyncio.Event())

    async def wait_restored(self, owner: str, timeout: float) -> bool:
        """Waits (up to ``timeout``) while the owner's session is being restored; False if
        it is still not restored by then."""
        pending = self._restoring.get(owner)
        if pending is None or pending.is_set():
            return True
        try:
            await asyncio.wait_for(pending.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def why_no_session(self, owner: str) -> str:
        """Why the owner has no session, for the user."""
        if (pending := self._restoring.get(owner)) is not None and not pending.is_set():
            return "your MSN session is still being restored after a restart of the bridge"
        if owner in self.unrestorable:
            return f"your MSN login could not be restored ({self.unrestorable[owner]})"
        if owner in self.not_allowed:
            return "your MSN login was signed out: you no longer have user rights here"
        return "you are not logged in to MSN"

    def _restored(self, owner: str) -> None:
        pending = self._restoring.pop(owner, None)
        if pending is not None:
            pending.set()

    async def restore(self, may_log_in: Callable[[str], bool] | None = None) -> int:
        """Starts the sessions of every stored login (at start-up); returns how many.

        ``may_log_in(owner)``: whether the owner still has the rights to an MSN login. A
        login whose owner lost them is not restored: it is signed out and its password
        forgotten (listed in ``not_allowed``, so the owner is told once)."""
        try:
            return await self._restore(may_log_in)
        finally:
            for owner in list(self._restoring):  # nothing left to wait for
                self._restored(owner)

    async def _restore(self, may_log_in: Callable[[str], bool] | None) -> int:
        started = 0
        for stored in await user_db.get_all(self.db, with_login=True):
            assert stored.passport is not None and stored.password is not None
            if may_log_in is not None and not may_log_in(stored.id):
                log.warning(
                    "Not restoring the MSN session of %s (%s): they no longer have user "
                    "rights; signed out and the password forgotten",
                    stored.id,
                    stored.passport,
                )
                self.not_allowed[stored.id] = stored.passport
                stored.passport, stored.password, stored.state = None, None, "logged_out"
                await user_db.save(self.db, stored)
                self._restored(stored.id)
                continue
            try:
                password = self.secrets.decrypt(stored.password, context=stored.id)
            except SecretKeyError as e:
                log.warning("Cannot restore the MSN session of %s: %s", stored.id, e)
                self.unrestorable[stored.id] = str(e)
                stored.state = "needs_login"
                await user_db.save(self.db, stored)
                self._restored(stored.id)
                continue
            client = self.client_factory(
                self.client_config(stored.passport, password, stored.machine_guid),
                http=self.http,
            )
            await self._seed_offline(stored.id, client)
            if stored.machine_guid is None:
                stored.machine_guid = client.machine_guid
                await user_db.save(self.db, stored)
            self._adopt(stored.id, client)
            await client.start()
            self._restored(stored.id)
            started += 1
        return started

    async def _seed_offline(self, owner: str, client: Client) -> None:
        """Offline messages delivered before a restart are never delivered again."""
        seen = getattr(client, "seen_offline_ids", None)
        if isinstance(seen, set):
            seen.update(await offline_db.seen(self.db, owner))

    async def stop(self) -> None:
        for owner in self._clients:
            self.outages.forget(owner)
        clients, self._clients = list(self._clients.values()), {}
        results = await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        for client, result in zip(clients, results, strict=True):
            if isinstance(result, Exception):
                log.warning("Stopping the session of %s failed: %s", client.config.passport, result)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _adopt(self, owner: str, client: Client) -> Callable[[object], None]:
        self._clients[owner] = client
        self.fetch_pictures(owner, client)

        def forward(event: object) -> None:
            self._forward(owner, event)

        client.add_listener(forward)
        if self.offline_ack is not None:
            client.offline_ack = partial(self.offline_ack, owner)
        return forward

    def fetch_pictures(self, owner: str, client: Client) -> None:
        """Contacts' display pictures are fetched for a Matrix owner (they become ghost
        avatars); the pool process does the same for the sessions it holds."""
        if owner.startswith("@"):
            client.p2p.manager.pictures = self.pictures  # one fetch per picture for all
            client.p2p.auto_fetch_pictures = True
            client.p2p.picture_wanted = self.picture_wanted

    def _forward(self, owner: str, event: object) -> None:
        if isinstance(event, SessionStateChanged) and self._clients.get(owner) is not None:
            self.outages.observe(owner, event)
        for listener in self.listeners:
            try:
                listener(owner, event)
            except Exception:
                log.exception("Listener failed on %s for %s", type(event).__name__, owner)
