"""The core's `Sessions` when connection pools hold the MSN sessions (pools.redis_url set).

Same interface as `msnbridge.core.sessions.Sessions` (it is one, with the parts that
touch a session replaced): ``get(owner)`` is a `RemoteClient` mirroring the session its
pool holds. A login stores the encrypted password first (state ``logging_in``) and asks
a pool to log in; a pool reads the password from the database, never from Redis.
Stopping the core leaves every session up in its pool; at start the core asks every pool
for snapshots and reads the events that waited for it, in order, each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from mautrix.util.async_db import Database
from redis.exceptions import RedisError

from puppets.event.session import SessionState

from ..config import Config
from ..core.event_ids import current_event_id
from ..core.outage import ConnectionNotice
from ..core.sessions import LoginFailed, Sessions, describe_login_error
from ..db import user as user_db
from ..db.user import Side, User
from ..secrets import SecretBox, SecretKeyError
from .link import CommandFailed, Envelope
from .redis_link import EVENTS_DROPPED, Keys, RedisCoreLink, connect, key_prefix
from .remote_client import RemoteClient
from .remote_irc import RemoteIRCConnections

log = logging.getLogger("msnbridge.pools.sessions")

LOGGING_IN = "logging_in"  # users.state while a pool carries out the login
# Event kinds whose handling must happen once even across a core restart; stored (settle)
# before the stream forgets them.
_ONCE = frozenset({"MessageReceived", "OfflineMessageReceived"})


class RemoteSessions(Sessions):
    def __init__(
        self, config: Config, db: Database, secrets: SecretBox, *, login_timeout: float = 60.0
    ) -> None:
        super().__init__(config, db, secrets, login_timeout=login_timeout)
        self.redis = connect(config["pools.redis_url"])
        self.keys = Keys(key_prefix(config["appservice.id"]))
        self.link = RedisCoreLink(self.redis, self.keys, lease_ttl=float(config["pools.lease_ttl"]))
        self.link.on_event(self._on_envelope)
        self.command_timeout = float(config["pools.command_timeout"])
        self.handled_ttl = int(config["pools.max_core_downtime"]) + 3600
        # Waits until what the listeners took from an event is stored (MsnEventRouter's
        # inbox); set by the bridge. Only then is the event acknowledged.
        self.settle: Callable[[], Awaitable[None]] | None = None
        self.irc: RemoteIRCConnections | None = None  # the IRC puppets' (carry_irc)
        self._linked = False
        self._pool_watch: asyncio.Task[None] | None = None
        self._dead_pools: set[str] = set()  # told already (a pool's name is never reused)

    def carry_irc(self) -> RemoteIRCConnections:
        """IRC puppet connections held by the pools too, over the same link."""
        if self.irc is None:
            self.irc = RemoteIRCConnections(self.link, command_timeout=self.command_timeout)
        return self.irc

    def _remote(self, owner: str, passport: str) -> RemoteClient:
        client = RemoteClient(owner, passport, self.link, command_timeout=self.command_timeout)
        self._adopt(owner, client)  # type: ignore[arg-type]
        return client

    def _adopt(self, owner: str, client: object) -> Callable[[object], None]:
        self._clients[owner] = client  # type: ignore[assignment]

        def forward(event: object) -> None:
            self._forward(owner, event)

        client.add_listener(forward)  # type: ignore[attr-defined]
        return forward

    async def _link_up(self) -> None:
        if not self._linked:
            self._linked = True
            await self.link.start()
            if self.irc is not None:
                self._pool_watch = asyncio.get_running_loop().create_task(
                    self._watch_pools(), name="pools-core-watch"
                )

    async def _watch_pools(self) -> None:
        """An IRC connection cannot move between pools: when its pool dies (no heartbeat
        for 3 lease TTLs), it is opened again on another one."""
        while True:
            await asyncio.sleep(self.link.lease_ttl)
            try:
                await self._check_pools()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: looked at again next time
                log.warning("Could not look at the connection pools' heartbeats: %s", e)

    async def _check_pools(self) -> None:
        assert self.irc is not None
        used = {c.pool for c in self.irc.conns.values() if c.pool and not c.closed}
        used |= {str(s.get("pool")) for s in self.irc.known.values() if s.get("pool")}
        if not used - self._dead_pools:
            return
        live = set(await self.link.live_pools())
        for pool in sorted(used - live - self._dead_pools):
            self._dead_pools.add(pool)
            reopened = self.irc.pool_gone(pool)
            log.warning("Connection pool %s is gone: %d IRC puppet connections are opened "
                        "again on another pool", pool, reopened)  # fmt: skip

    async def _logins_changed(self) -> None:
        """Tells the pools to read the stored logins again (otherwise they do only once a
        minute): a login to take over, a logout to sign out."""
        try:
            await self.redis.incr(self.keys.logins)
        except RedisError as e:
            log.warning("Could not tell the connection pools of a login change: %s", e)

    # --- login / logout ---

    async def _login(  # type: ignore[override]
        self,
        owner: str,
        side: Side,
        passport: str,
        password: str,
        management_room: str | None,
    ) -> RemoteClient:
        started = time.monotonic()
        await self._link_up()
        await self._refuse_if_taken(owner, passport, password, started)
        before = await user_db.get(self.db, owner)
        stored = await user_db.get(self.db, owner) or User(owner, side)
        if stored.passport != passport:
            stored.machine_guid = None
        stored.passport = passport
        stored.password = self.secrets.encrypt(password, context=owner)
        stored.state = LOGGING_IN
        stored.management_room = management_room or stored.management_room
        await user_db.save(self.db, stored)
        if management_room:
            self.login_rooms[owner] = management_room
        client = self._remote(owner, passport)
        self.logging_in.add(owner)
        envelope = Envelope(f"login:{uuid.uuid4().hex}", owner, "login", {"passport": passport})
        try:
            reply = await self.link.command(envelope, timeout=self.login_timeout)
        except BaseException as e:
            self.login_rooms.pop(owner, None)
            if self._clients.get(owner) is client:
                del self._clients[owner]
                self.report_states()
                self.outages.forget(owner)
            await client.close()
            await self._undo_login(owner, before)
            if self.metrics is not None and not isinstance(e, asyncio.CancelledError):
                self.metrics.login_failed(e)
            if isinstance(e, TimeoutError):
                raise LoginFailed(describe_login_error(e)) from None
            if isinstance(e, CommandFailed):
                if "wrong passport or password" in str(e):
                    self.refusals.observe_refusal(time.monotonic() - started)
                raise LoginFailed(str(e)) from None
            raise
        finally:
            self.logging_in.discard(owner)
        stored.state = "logged_in"
        stored.machine_guid = reply.get("machine_guid") or stored.machine_guid
        await user_db.save(self.db, stored)
        await self._logins_changed()
        client.config.machine_guid = stored.machine_guid
        if client.state is not SessionState.ONLINE:
            client.state = SessionState.ONLINE  # its events may still be on their way
        self.login_rooms.pop(owner, None)
        self.refusals.observe_login(time.monotonic() - started)
        if self.metrics is not None:
            self.metrics.login_ok()
        log.info("%s logged in to MSN as %s (MSNP%s, via a pool)", owner, passport,
                 reply.get("protocol"))  # fmt: skip
        return client

    async def _undo_login(self, owner: str, before: User | None) -> None:
        stored = await user_db.get(self.db, owner)
        if stored is None:
            return
        if before is not None and before.state == "logged_in":
            await user_db.save(self.db, before)
        else:
            stored.passport, stored.password, stored.state = None, None, "logged_out"
            await user_db.save(self.db, stored)
        await self._logins_changed()

    async def logout(self, owner: str) -> bool:
        client = self._clients.pop(owner, None)
        self.outages.forget(owner)
        if client is not None:
            await client.close()  # type: ignore[attr-defined]
            self.report_states()
        stored = await user_db.get(self.db, owner)
        had_login = stored is not None and (stored.passport or stored.password) is not None
        if stored is not None:
            # Stored first: a pool that misses the command drops the session on its
            # next round, seeing the login gone.
            stored.passport, stored.password, stored.state = None, None, "logged_out"
            await user_db.save(self.db, stored)
            await self._logins_changed()
        if client is not None or had_login:
            envelope = Envelope(f"logout:{uuid.uuid4().hex}", owner, "logout", {})
            try:
                await self.link.command(envelope, timeout=self.command_timeout)
            except (CommandFailed, TimeoutError) as e:
                log.warning("%s: the pool did not confirm the logout (%s)", owner, e)
        return client is not None or had_login

    # --- restore at start-up ---

    async def _restore(self, may_log_in: Callable[[str], bool] | None) -> int:
        """Nothing to start: the pools hold the sessions. A proxy per stored login, then
        snapshots from every pool and the events that waited."""
        restored = 0
        for stored in await user_db.get_all(self.db, with_login=True):
            assert stored.passport is not None and stored.password is not None
            if stored.state == LOGGING_IN:  # a login the core never finished
                stored.passport, stored.password, stored.state = None, None, "logged_out"
                await user_db.save(self.db, stored)
                self._restored(stored.id)
                continue
            if may_log_in is not None and not may_log_in(stored.id):
                log.warning("Not restoring the MSN session of %s (%s): no user rights any "
                            "more; signed out", stored.id, stored.passport)  # fmt: skip
                self.not_allowed[stored.id] = stored.passport
                stored.passport, stored.password, stored.state = None, None, "logged_out"
                await user_db.save(self.db, stored)
                self._restored(stored.id)
                continue
            try:
                self.secrets.decrypt(stored.password, context=stored.id)
            except SecretKeyError as e:
                self.unrestorable[stored.id] = str(e)
                stored.state = "needs_login"
                await user_db.save(self.db, stored)
                self._restored(stored.id)
                continue
            client = self._remote(stored.id, stored.passport)
            client.config.machine_guid = stored.machine_guid
            self._restored(stored.id)
            restored += 1
        await self._link_up()
        await self._logins_changed()  # some may have been signed out above
        await self.link.broadcast(Envelope(f"resync:{uuid.uuid4().hex}", "", "resync_all", {}))
        return restored

    # --- events from the pools ---

    async def _on_envelope(self, envelope: Envelope) -> None:
        owner = envelope.owner
        if self.irc is not None and self.irc.owns(envelope):
            await self.irc.apply(envelope)
            return
        if envelope.kind == EVENTS_DROPPED:
            count = envelope.data.get("count", 0)
            self._forward(owner, ConnectionNotice(
                f"The bridge was down for longer than it keeps MSN events: {count} events of "
                f"your session (messages among them) could not be kept and are lost.",
                back=False,
            ))  # fmt: skip
            return
        client = self._clients.get(owner)
        if client is None:
            return  # logged out meanwhile
        once = envelope.kind in _ONCE
        handled = self.keys.prefix + ":handled:" + envelope.id
        if once and await self.redis.exists(handled):
            return  # handled before the core was restarted
        token = current_event_id.set(envelope.id)
        try:
            client.apply(envelope)  # type: ignore[attr-defined]
        finally:
            current_event_id.reset(token)
        if once:
            if self.settle is not None:
                await self.settle()
            await self.redis.set(handled, "1", ex=self.handled_ttl)

    # --- stop ---

    async def stop(self) -> None:
        """Leaves every session up in its pool."""
        if self._pool_watch is not None:
            self._pool_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pool_watch
        for owner in self._clients:
            self.outages.forget(owner)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()  # type: ignore[attr-defined]
        await self.link.stop()
        await self.redis.aclose()
        if self._http is not None:
            await self._http.close()
            self._http = None
