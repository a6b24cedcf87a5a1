"""The pool process (`msnbridge pool -c bridge.yaml`): holds MSN sessions for the core.

Every lease_ttl/3 it beats its heartbeat, renews its leases (a session whose lease was
lost to another pool is left: stopped here), and takes the leases of logged-in users
nobody holds while it holds fewer than its share; it starts those sessions from the
shared database (the password decrypted here: no secret travels over Redis).

A round costs what changed, not what is stored: the logged-in users are read from the
database only when the core says a login changed (the ``{p}:logins`` counter) and once a
minute besides, and the leases nobody holds are looked for only among those given up
(``{p}:unheld``) and those of pools whose heartbeat stopped (their ``{p}:holds:{pool}``
sets); every lease is looked at only in the minutely round.

On SIGTERM it hands its sessions over: on MSNP16+ (MPOP) the lease is released and the
pool waits until another pool has the session online (a second endpoint, a fresh machine
GUID) before signing out its own endpoint, so contacts see no sign-out; before MSNP16 a
second login would throw the first one out anyway, so it signs out and the next pool logs
in straight away (a clean, quick re-login).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import signal
import socket
import sqlite3
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
from mautrix.util.async_db import Database

from puppets import Client, SessionState
from puppets.msnobject import MSNObject

from ..config import Config
from ..core.sessions import Sessions, describe_login_error, first_login_outcome
from ..db import ghost as ghost_db
from ..db import user as user_db
from ..db.wait import open_database_when_ready, shown
from ..errors import StartupError
from ..irc.options import IRCOptions
from ..metrics import Health, Metrics
from ..secrets import SecretBox, SecretKeyError
from .executor import SessionExecutor
from .irc_executor import IRCExecutor
from .leases import Leases
from .link import CommandFailed, Envelope
from .metrics import PoolMetrics
from .redis_link import Keys, RedisPoolLink, connect, events_backlog, key_prefix

log = logging.getLogger("msnbridge.pools.pool")

DONE_TTL = 24 * 3600  # how long a command's outcome answers its repeats
HANDOVER_WAIT = 60.0  # how long a leaving pool waits for the next one to be online
MPOP = 16  # the first protocol version with several endpoints per account
# Seconds between rounds that read every stored login and every lease, whatever changed:
# they catch what the quick rounds cannot see (a login changed while Redis was away, a
# lease taken by a pool that kept no holds set).
FULL_ROUND_INTERVAL = 60.0


class RedisDoneStore:
    """``{p}:done:{id}``: "" while the command runs, then its outcome (JSON), a day."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def claim(self, command_id: str) -> bool:
        return bool(await self.redis.set(self.keys.done(command_id), "", nx=True, ex=DONE_TTL))

    async def outcome(self, command_id: str) -> dict[str, Any] | None:
        value = await self.redis.get(self.keys.done(command_id))
        return json.loads(value) if value else None

    async def finish(self, command_id: str, outcome: dict[str, Any]) -> None:
        await self.redis.set(self.keys.done(command_id), json.dumps(outcome), ex=DONE_TTL)

    async def release(self, command_id: str) -> None:
        if await self.redis.get(self.keys.done(command_id)) == "":
            await self.redis.delete(self.keys.done(command_id))


def pool_name(config: Config) -> str:
    """Unique per process (a restarted pool is a new one: what the old one had taken
    is not waiting for it); the instance name comes first."""
    instance = config["pools.instance"] or f"{socket.gethostname()}-{os.getpid()}"
    return f"{instance}.{secrets.token_hex(3)}"


class Pool:
    def __init__(self, config: Config, *, login_timeout: float = 60.0) -> None:
        self.config = config
        self.instance = config["pools.instance"] or socket.gethostname()
        self.name = pool_name(config)
        self.ttl = float(config["pools.lease_ttl"])
        self.secrets = SecretBox(config["bridge.secret_key"])
        self.keys = Keys(key_prefix(config["appservice.id"]))
        self.login_timeout = login_timeout
        self.redis = connect(config["pools.redis_url"])
        self.link = RedisPoolLink(
            self.redis, self.keys, self.name, lease_ttl=self.ttl,
            max_core_downtime=float(config["pools.max_core_downtime"]),
        )  # fmt: skip
        self.leases = Leases(self.redis, self.keys, self.name, self.ttl, tracked=True)
        # What the last full read of the logins found: the logged-in users (None: not read
        # yet), the core's change counter then, and when it was (loop time).
        self._wanted: set[str] | None = None
        self._logins_seen: str | None = None
        self._last_full = 0.0
        self.full_round_interval = FULL_ROUND_INTERVAL
        self.executor = SessionExecutor(
            self.link, RedisDoneStore(self.redis, self.keys), pool=self.name,
            temp_dir=config["files.temp_dir"],
        )  # fmt: skip
        self.executor.register("login", self._login_command)
        self.executor.register("logout", self._logout_command)
        self.executor.register("resync_all", self._resync_all)
        # IRC puppet connections (irc.enabled): leases of their own, so that they do not
        # count towards this pool's share of MSN sessions.
        self.irc_leases = Leases(self.redis, self.keys, self.name, self.ttl)
        self.irc: IRCExecutor | None = None
        if config["irc.enabled"]:
            self.irc = IRCExecutor(
                self.link, pool=self.name, options=IRCOptions.from_config(config),
                on_open=self.irc_leases.acquire, on_close=self._irc_closed,
            )  # fmt: skip
            self.irc.install(self.executor)  # deduped by command id like the others
        self.db: Database | None = None
        self._factory: Sessions | None = None  # client configs, the shared HTTP client
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._tick: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.leaving = False
        self.metrics = Metrics()
        self.pool_metrics = PoolMetrics(self.metrics.registry, self.instance)
        self._handing: dict[str, asyncio.Task[None]] = {}  # rebalancing hand-overs

    @property
    def clients(self) -> dict[str, Client]:
        return self.executor.clients

    async def start(self) -> None:
        self.db = await self._open_database()
        self._factory = Sessions(self.config, self.db, self.secrets)
        self._factory.picture_wanted = self._picture_wanted
        await self.leases.heartbeat()
        await self.link.start()
        if self.config["metrics.enabled"]:
            self.metrics.set_health_provider(self._health)
            await self.metrics.start_http(
                self.config["metrics.listen_address"], self.config["metrics.port"]
            )
        await self._round()
        self._tick = asyncio.get_running_loop().create_task(self._ticking(), name="pool-tick")
        log.info("Connection pool %s started", self.name)

    async def _open_database(self) -> Database:
        """The shared database, waited for while it is starting (a PostgreSQL started beside
        the pool, as in docker compose: db/wait.py). Migrations by the core and pools at
        once are serialised by open_database itself."""
        url = str(self.config["database"])
        try:
            return await open_database_when_ready(url)
        except (OSError, asyncpg.PostgresError, sqlite3.Error) as e:
            raise StartupError(f"cannot open the database {shown(url)}: {e}") from None

    async def _picture_wanted(self, passport: str, obj: MSNObject) -> bool:
        """Not when the contact's ghost shows this picture already (as the core's Matrix
        side asks in-process): a session started again here does not fetch every picture
        of its contacts again."""
        assert self.db is not None
        ghost = await ghost_db.get(self.db, passport)
        return not await ghost_db.shows_picture(self.db, ghost, obj.sha1d)

    # --- the periodic round ---

    async def _ticking(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Pool %s: a round of lease keeping failed", self.name)

    async def _round(self) -> None:
        await self.leases.heartbeat()
        for owner in await self.leases.renew():
            log.warning("%s: lease lost to another pool; leaving the session", owner)
            self.pool_metrics.lease_moved("lost")
            await self._drop(owner, sign_out=True)
        for owner in await self.irc_leases.renew():
            log.warning("%s: lease lost to another pool; closing the connection", owner)
            if self.irc is not None:
                await self.irc.drop(owner, "lease lost")
        await self._measure()
        if self.leaving:
            return
        beats = await self.leases.beat_times()
        now = time.time()
        await self._forget_dead_pools(beats, now)
        fresh_logins = await self._read_logins_if_changed()
        wanted = self._wanted
        assert wanted is not None
        # Where a lease nobody holds can be: given up (None), or taken by a pool whose
        # heartbeat stopped (its leases expire a TTL after its last beat).
        stale = [p for p, beat in beats.items() if beat < now - self.ttl and p != self.name]
        sources: dict[str | None, set[str]] = {None: await self.leases.given_up()}
        for pool in stale:
            sources[pool] = await self.leases.taken_by(pool)
        candidates = set(fresh_logins)
        for owners in sources.values():
            candidates |= owners & wanted
        # Live for the share: a heartbeat within the TTL. A pool silent longer has lost its
        # leases; counting it for 3 TTLs (as forgetting it does) kept the survivors at
        # their old share and the dead pool's sessions down until then.
        live = {p for p, beat in beats.items() if beat >= now - self.ttl} | {self.name}
        share = math.ceil(len(wanted) / len(live)) if wanted else 0
        holders = await self.leases.holders(sorted(candidates))
        unheld = [o for o, holder in holders.items() if holder is None]
        for owner in unheld:
            if len(self.leases.held | self._starting.keys()) >= share:
                break
            if owner in self._starting or owner in self.clients:
                continue
            if await self.leases.acquire(owner):
                self.pool_metrics.lease_moved("taken")
                self._spawn_start(owner)
        # What only the logins just read showed, for any pool with room.
        await self.leases.for_others(
            {o for o in unheld if o not in self.leases.held and o not in sources[None]}
        )
        for source, owners in sources.items():
            # Settled: logged out, or held by a pool other than the stale one (a given-up
            # lease taken by anyone).
            await self.leases.settled(source, {
                o for o in owners
                if o not in wanted or holders.get(o) not in (None, source)
            })  # fmt: skip
        fresh = [p for p, beat in beats.items() if beat >= now - self.ttl]
        self._rebalance(await self.leases.counts(fresh), share, fresh)

    async def _read_logins_if_changed(self) -> set[str]:
        """Reads the logged-in users again when the core changed a login since the last
        read, or the periodic full round is due; drops the sessions of users logged out.
        Returns the users whose leases to look at: every one in a full round, those
        logged in since the last read otherwise."""
        seen = await self.redis.get(self.keys.logins)
        loop = asyncio.get_running_loop()
        full = self._wanted is None or loop.time() - self._last_full >= self.full_round_interval
        if seen == self._logins_seen and not full:
            return set()
        assert self.db is not None
        # A session started after this point (a login command) has its row written before
        # the command was sent, but may have been read before: only those attached now are
        # checked against what the read finds.
        attached = set(self.clients)
        logins = await user_db.get_all(self.db, with_login=True)
        kept = {u.id for u in logins if u.state in ("logged_in", "logging_in")}
        for owner in [o for o in attached if o not in kept and o not in self._starting]:
            if owner not in self.clients:
                continue
            log.info("%s: logged out of the bridge; signing the session out", owner)
            await self._drop(owner, sign_out=True)
            await self._release(owner, hand_on=False)
        before, self._wanted = self._wanted, {u.id for u in logins if u.state == "logged_in"}
        self._logins_seen = seen
        if full or before is None:
            self._last_full = loop.time()
            return set(self._wanted)
        return self._wanted - before

    def _rebalance(self, held: dict[str, int], share: int, live: list[str]) -> None:
        """A new pool takes a share: a pool holding more than its share hands the extra
        sessions over (as on SIGTERM: no sign-out on MSNP16+) while another live pool holds
        fewer than its share; that pool takes them in its next round."""
        if self._handing or self._starting:
            return  # one move at a time: the counts below are settled again first
        room = sum(max(0, share - held.get(p, 0)) for p in live if p != self.name)
        mine = [o for o in sorted(self.clients) if o in self.leases.held]
        extra = min(len(mine) - share, room)
        for owner in mine[: max(0, extra)]:
            log.info("%s: handing the session over to a pool with room (share %d)", owner, share)
            task = asyncio.get_running_loop().create_task(
                self._hand_over(owner, rebalancing=True), name=f"hand-over:{owner}"
            )
            self._handing[owner] = task
            task.add_done_callback(lambda _, o=owner: self._handing.pop(o, None))

    async def _measure(self) -> None:
        self.pool_metrics.set_sessions(len(self.clients))
        self.metrics.set_sessions(Counter(c.state for c in self.clients.values()))
        self.pool_metrics.dropped_total(self.link.dropped_total)
        self.pool_metrics.set_backlog(*await events_backlog(self.redis, self.keys))

    def _health(self) -> Health:
        online = sum(c.state is SessionState.ONLINE for c in self.clients.values())
        return Health(
            "degraded" if self.leaving else "ok",
            {"pool": self.instance, "sessions": len(self.clients), "online": online},
        )

    async def _release(self, owner: str, *, hand_on: bool = True) -> None:
        if await self.leases.release(owner, hand_on=hand_on):
            self.pool_metrics.lease_moved("released")

    async def _forget_dead_pools(self, beats: dict[str, float], now: float) -> None:
        for dead in [p for p, beat in beats.items() if beat < now - 3 * self.ttl]:
            await self.redis.delete(self.keys.commands(dead))
            await self.leases.forget_pool(dead)  # what it held is for the others to take
            await self.redis.zrem(self.keys.pools, dead)

    def _spawn_start(self, owner: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._start_held(owner), name=f"start:{owner}"
        )
        self._starting[owner] = task
        task.add_done_callback(lambda _: self._starting.pop(owner, None))

    async def _start_held(self, owner: str) -> None:
        """Starts the session of a lease just taken (restore after another pool)."""
        try:
            await self._start_session(owner, wait=False)
        except Exception as e:
            log.warning("%s: could not start the session here: %s", owner, e)
            await self._release(owner)

    async def _start_session(self, owner: str, *, wait: bool) -> Client:
        assert self.db is not None and self._factory is not None
        stored = await user_db.get(self.db, owner)
        if stored is None or stored.passport is None or stored.password is None:
            raise CommandFailed("no stored MSN login")
        try:
            password = self.secrets.decrypt(stored.password, context=owner)
        except SecretKeyError as e:
            raise CommandFailed(f"your MSN login could not be restored ({e})") from None
        handover = await self.redis.get(self.keys.handover(owner))
        # Taking over from a leaving pool on MSNP16+: a second endpoint of its own, so
        # both are online together for a moment and contacts see no sign-out.
        guid = f"{{{uuid.uuid4()}}}".upper() if handover else stored.machine_guid
        client = Client(self._factory.client_config(stored.passport, password, guid),
                        http=self._factory.http)  # fmt: skip
        self._factory.fetch_pictures(owner, client)  # one PictureCache for the pool
        await self._factory._seed_offline(owner, client)
        first, first_outcome = first_login_outcome(client, CommandFailed)
        client.add_listener(first_outcome)
        self.executor.attach(owner, client)
        await client.start()
        try:
            if wait or handover:
                await asyncio.wait_for(first, self.login_timeout)
        except BaseException as e:
            self.executor.detach(owner)
            await client.stop()
            if isinstance(e, TimeoutError):
                raise CommandFailed(describe_login_error(e)) from None
            raise
        finally:
            client.remove_listener(first_outcome)
            if not first.done():
                first.cancel()
        if handover:
            await self.redis.delete(self.keys.handover(owner))  # the leaving pool may go
        if stored.machine_guid != client.machine_guid:
            stored.machine_guid = client.machine_guid
            await user_db.save(self.db, stored)
        log.info("%s: session started on pool %s", owner, self.name)
        return client

    async def _irc_closed(self, owner: str) -> None:
        await self.irc_leases.release(owner)

    async def _drop(self, owner: str, *, sign_out: bool) -> None:
        client = self.executor.detach(owner)
        if client is not None and sign_out:
            await client.stop()

    # --- pool-level commands ---

    async def _login_command(self, envelope: Envelope) -> dict[str, Any]:
        owner = envelope.owner
        if owner in self.clients:
            raise CommandFailed("you are logged in already; send 'logout' first")
        if not await self.leases.acquire(owner):
            raise CommandFailed("your MSN session is being started on another connection pool")
        self.pool_metrics.lease_moved("taken")
        try:
            client = await self._start_session(owner, wait=True)
        except BaseException:
            await self._release(owner)
            raise
        return {"machine_guid": client.machine_guid, "protocol": client.protocol}

    async def _logout_command(self, envelope: Envelope) -> dict[str, Any]:
        await self._drop(envelope.owner, sign_out=True)
        await self._release(envelope.owner, hand_on=False)
        return {}

    async def _resync_all(self, envelope: Envelope) -> dict[str, Any]:
        for owner in self.clients:
            self.executor.publish_snapshot(owner)
        irc = len(self.irc.publish_snapshots()) if self.irc is not None else 0
        return {"sessions": len(self.clients), "irc_connections": irc}

    # --- stopping ---

    async def stop(self, *, hand_over: bool = True) -> None:
        """Hands every session over (``hand_over``) or just signs it out."""
        self.leaving = True
        if self.irc is not None:
            # First: an IRC connection cannot be handed over, the core opens it again on
            # another pool once told (IRCGone, published before this pool drops out of
            # the live ones, so the core does not take it for dead).
            await self.irc.close()
        await self.leases.leave()  # the others' shares grow: they take these
        for task in list(self._starting.values()):
            task.cancel()
        owners = [o for o in self.clients if o not in self._handing]
        if hand_over:
            await asyncio.gather(
                *(self._hand_over(o) for o in owners), *self._handing.values(),
                return_exceptions=True,
            )  # fmt: skip
        for task in list(self._handing.values()):
            task.cancel()
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        with contextlib.suppress(TimeoutError):
            await self.executor.flush(5)
        for owner in list(self.clients):
            await self._drop(owner, sign_out=True)
            await self._release(owner)
        await self.executor.close()
        await self.link.stop()
        await self.link.forget()
        if self._factory is not None:
            await self._factory.stop()
        if self.db is not None:
            await self.db.stop()
        await self.redis.aclose()
        await self.metrics.stop()
        log.info("Connection pool %s stopped", self.name)

    async def _hand_over(self, owner: str, *, rebalancing: bool = False) -> None:
        client = self.clients.get(owner)
        if client is None:
            return
        if (client.protocol or 0) >= MPOP and client.state is SessionState.ONLINE:
            await self.redis.set(self.keys.handover(owner), self.name, px=int(HANDOVER_WAIT * 1000))
            await self.leases.release(owner)
            self.pool_metrics.lease_moved("handed_over")
            loop = asyncio.get_running_loop()
            unclaimed_until = loop.time() + 2 * self.ttl
            for _ in range(int(HANDOVER_WAIT / 0.2)):  # until the next pool has it online
                if not await self.redis.exists(self.keys.handover(owner)):
                    break
                if (rebalancing and not self.leaving and loop.time() > unclaimed_until
                        and await self.leases.acquire(owner)):  # fmt: skip
                    # Nobody took it (the pool with room went away): kept here, still up.
                    await self.redis.delete(self.keys.handover(owner))
                    self.pool_metrics.lease_moved("taken")
                    log.info("%s: no pool took the session over; kept here", owner)
                    return
                await asyncio.sleep(0.2)
            self.executor.mute(owner)  # the new endpoint carries it from here
            await self._drop(owner, sign_out=True)
        else:
            self.executor.mute(owner)
            await self._drop(owner, sign_out=True)
            await self.leases.release(owner)
            self.pool_metrics.lease_moved("handed_over")
        log.info("%s: session handed over", owner)

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("Pool %s stopping on signal: handing its sessions over", self.name)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            await self.stop()
