"""Files and pictures through a connection pool with the whole bridge: the core (the
`Bridge` with ``pools.redis_url``, so RemoteSessions) and the real `Pool` class in this
process, a real Redis, PostgreSQL, Synapse and the MSNP test server.

The bytes travel in chunks over Redis (``{p}:xfer:{id}``): a sampler checks that no
transfer ever had more than the window of entries waiting and that nothing is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from PIL import Image

from msnbridge.config import load_config
from msnbridge.pools import transfers as transfers_mod
from msnbridge.pools.pool import Pool
from msnbridge.pools.redis_link import Keys, key_prefix
from puppets.event.contact import PresenceChanged
from puppets.event.transfer import FileOffered
from puppets.mime import build_message
from puppets.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, MSNObject
from puppets.p2p.service import build_emoticon_payload
from tests.msnp_server import MSNPTestServer
from tests.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from tests.synapse_server import SynapseServer, is_notice_from, running_bridge, wait_for_event
from tests.test_faults_process import daemon_logging, database_url
from tests.test_matrix_media import download, near, striped_png, tiny_png, upload
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    bot_id,
    friend,
    ghost_id,
    join,
    log_in,
    msn,  # noqa: F401 (fixture)
    put_event,
    settings,
    wait_invite,
)
from tests.test_pools_restart import pool_process

pytestmark = pytest.mark.timeout(240)
MB = 1024 * 1024


class Sampler:
    """Watches the transfer keys in Redis while the test runs."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.Redis.from_url(url)
        self.pattern = f"{prefix}:xfer:*"
        self.most_waiting = 0
        self.seen = 0
        self.biggest_entry = 0
        self._task: asyncio.Task[None] | None = None

    async def keys(self) -> list[bytes]:
        return [k async for k in self.redis.scan_iter(match=self.pattern)]

    async def _run(self) -> None:
        while True:
            for key in await self.keys():
                if key.endswith(b":cancel"):
                    continue
                self.seen += 1
                self.most_waiting = max(self.most_waiting, await self.redis.llen(key))
                for entry in await self.redis.lrange(key, 0, -1):
                    self.biggest_entry = max(self.biggest_entry, len(entry))
            await asyncio.sleep(0.01)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Sampler]:
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self.redis.aclose()


@contextlib.asynccontextmanager
async def core_and_pool(config: Path) -> AsyncIterator[Pool]:
    async with running_bridge(config):
        pool = Pool(load_config(str(config)), login_timeout=30)
        await pool.start()
        try:
            yield pool
        finally:
            await pool.stop(hand_over=False)


async def test_files_both_ways_through_a_pool_arrive_intact(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with database_url("postgres", tmp_path) as db:
        files = {"temp_dir": str(tmp_path / "t"), "max_incoming_size": 6 * MB}
        config = bridge_config(
            **settings(msn, files=files, pools={"redis_url": redis_url, "lease_ttl": 3}),
            database=db,
        )
        prefix = Keys(key_prefix(load_config(str(config))["appservice.id"])).prefix
        owner = await synapse.register_user()
        bob, bob_events = await friend(msn, BOB)
        incoming = os.urandom(5 * MB + 4321)
        src = tmp_path / "holiday video.bin"
        src.write_bytes(incoming)
        big = tmp_path / "big.bin"
        big.write_bytes(b"\0" * (6 * MB + 1))
        outgoing = os.urandom(2 * MB + 99)
        sampler = Sampler(redis_url, prefix)
        try:
            async with core_and_pool(config), sampler.running():
                management = await log_in(synapse, owner)
                # A contact's file: the core accepts it as in-process, the pool pumps it.
                sent = bob.p2p.manager.send_file(ALICE, src)
                assert await sent.wait(timeout=90) == "completed"
                room = await wait_invite(synapse, owner)
                await join(synapse, owner, room)
                event = await wait_for_event(
                    synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.file",
                    timeout=60,
                )  # fmt: skip
                assert event["sender"] == ghost_id(synapse, BOB)
                content = event["content"]
                assert content["body"] == "holiday video.bin"
                assert content["info"]["size"] == len(incoming)
                got = await download(synapse, content["url"], owner.access_token)
                assert hashlib.sha256(got).digest() == hashlib.sha256(incoming).digest()

                # One over the core's limit: declined by the core, the contact hears it.
                refused = bob.p2p.manager.send_file(ALICE, big)
                assert await refused.wait(timeout=30) == "declined"
                await wait_for_event(
                    synapse, owner, management, is_notice_from(bot_id(synapse), "larger than")
                )

                # The owner's file to the contact.
                mxc = await upload(synapse, owner.access_token, outgoing, "application/zip")
                info = {"mimetype": "application/zip", "size": len(outgoing)}
                message = {"msgtype": "m.file", "body": "photos.zip", "url": mxc, "info": info}
                await put_event(synapse, owner, room, "m.room.message", message)
                offer = await bob_events.wait_for(FileOffered, timeout=30)
                assert (offer.sender, offer.name, offer.size) == (
                    ALICE,
                    "photos.zip",
                    len(outgoing),
                )
                dest = tmp_path / "got.zip"
                offer.transfer.accept(dest)
                assert await offer.transfer.wait(timeout=60) == "completed"
                assert dest.read_bytes() == outgoing

                # Declined by the contact: said in the room as an undelivered message.
                await put_event(
                    synapse, owner, room, "m.room.message", {**message, "body": "b.zip"}
                )
                offer = await bob_events.wait_for(
                    FileOffered, lambda e: e.name == "b.zip", timeout=30
                )
                await asyncio.sleep(0.5)  # the core has put what the window holds
                offer.transfer.decline()
                await wait_for_event(
                    synapse, owner, room, is_notice_from(bot_id(synapse), "declined")
                )

                # Bounded: never more than the window waiting, no entry over a chunk, and
                # nothing left once done.
                assert sampler.seen > 0
                assert sampler.most_waiting <= transfers_mod.WINDOW
                assert 0 < sampler.biggest_entry <= transfers_mod.CHUNK + 1
                for _ in range(100):
                    if not await sampler.keys():
                        break
                    await asyncio.sleep(0.1)
                assert await sampler.keys() == []
                for _ in range(50):  # (the core removes its copy after the report)
                    if not list((tmp_path / "t").iterdir()):
                        break
                    await asyncio.sleep(0.1)
                assert list((tmp_path / "t").iterdir()) == []  # nothing left on disk
        finally:
            await bob.stop()


async def test_a_file_under_way_when_the_pool_is_killed_fails_and_the_owner_is_told(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with database_url("postgres", tmp_path) as db:
        files = {"temp_dir": str(tmp_path / "t")}
        config = bridge_config(
            **settings(msn, files=files, pools={"redis_url": redis_url, "lease_ttl": 3}),
            database=db,
            logging=daemon_logging(tmp_path / "pool.log"),
        )
        owner = await synapse.register_user()
        bob, _ = await friend(msn, BOB)
        src = tmp_path / "long.bin"
        src.write_bytes(os.urandom(40 * MB))
        try:
            async with running_bridge(config), pool_process(config, tmp_path, "pool") as proc:
                management = await log_in(synapse, owner)
                sent = bob.p2p.manager.send_file(ALICE, src)
                for _ in range(600):
                    if sent.done > 2 * MB:
                        break
                    await asyncio.sleep(0.05)
                assert sent.done > 2 * MB and not sent.finished
                proc.kill()  # SIGKILL: nobody tells anybody
                await proc.wait()
                await wait_for_event(
                    synapse, owner, management,
                    is_notice_from(bot_id(synapse), "connection pool holding the session stopped"),
                    timeout=30,
                )  # fmt: skip
                # The contact's Messenger: the pool's connection is gone, the transfer ends.
                assert await sent.wait(timeout=90) in ("cancelled", "failed")
                for _ in range(50):
                    if not list((tmp_path / "t").iterdir()):
                        break
                    await asyncio.sleep(0.1)
                assert [
                    p.name for p in (tmp_path / "t").iterdir() if p.name.startswith("in-")
                ] == []
        finally:
            await bob.stop()


async def test_a_file_under_way_when_the_core_stops_is_cancelled_for_the_contact(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with database_url("postgres", tmp_path) as db:
        files = {"temp_dir": str(tmp_path / "t")}
        config = bridge_config(
            **settings(msn, files=files, pools={"redis_url": redis_url, "lease_ttl": 3}),
            database=db,
        )
        prefix = Keys(key_prefix(load_config(str(config))["appservice.id"])).prefix
        owner = await synapse.register_user()
        bob, _ = await friend(msn, BOB)
        src = tmp_path / "long.bin"
        src.write_bytes(os.urandom(40 * MB))
        sampler = Sampler(redis_url, prefix)
        try:
            pool = Pool(load_config(str(config)), login_timeout=30)
            async with sampler.running():
                try:
                    async with running_bridge(config):
                        await pool.start()
                        await log_in(synapse, owner)
                        sent = bob.p2p.manager.send_file(ALICE, src)
                        for _ in range(600):
                            if sent.done > 2 * MB:
                                break
                            await asyncio.sleep(0.05)
                        assert sent.done > 2 * MB and not sent.finished
                    # The core stopped (the pool goes on): the contact hears a BYE.
                    assert await sent.wait(timeout=30) == "cancelled"
                    assert "contact cancelled" in sent.reason
                    assert pool.clients[owner.user_id].state.value == "online"
                    for _ in range(50):
                        if not await sampler.keys():
                            break
                        await asyncio.sleep(0.1)
                    assert await sampler.keys() == []
                finally:
                    await pool.stop(hand_over=False)
        finally:
            await bob.stop()


async def test_emoticons_voice_clips_and_the_owners_picture_through_a_pool(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with database_url("postgres", tmp_path) as db:
        config = bridge_config(
            **settings(msn, pools={"redis_url": redis_url, "lease_ttl": 3}), database=db
        )
        owner = await synapse.register_user()
        avatar = striped_png(1200, 400, (0, 200, 0))
        mxc = await upload(synapse, owner.access_token, avatar, "image/png")
        profile = f"/_matrix/client/v3/profile/{quote(owner.user_id)}/avatar_url"
        await synapse.request("PUT", profile, {"avatar_url": mxc}, token=owner.access_token)
        bob, bob_events = await friend(msn, BOB)
        cat = tiny_png(b"cat")
        cat_obj = MSNObject.for_data(BOB, cat, TYPE_EMOTICON)
        bob.p2p.manager.serve_object(cat_obj, cat)
        out = io.BytesIO()
        with wave.open(out, "wb") as w:  # a long clip: over two chunks
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(os.urandom(600_000))
        clip = out.getvalue()
        clip_obj = MSNObject.for_data(BOB, clip, TYPE_VOICE_CLIP)
        bob.p2p.manager.serve_object(clip_obj, clip)
        datacast = build_message(
            [("Content-Type", "text/x-msnmsgr-datacast")],
            f"ID: 3\r\nData: {clip_obj.build()}\r\n\r\n".encode(),
        )
        try:
            async with core_and_pool(config):
                await log_in(synapse, owner)
                # The owner's Matrix avatar is their MSN picture, set in the pool.
                seen = await bob_events.wait_for(
                    PresenceChanged,
                    lambda e: e.passport == ALICE and e.msnobject is not None,
                    timeout=30,
                )
                got = await bob.p2p.manager.fetch_object(ALICE, seen.msnobject, timeout=20)
                with Image.open(io.BytesIO(got)) as im:
                    assert (im.format, im.size) == ("PNG", (96, 96))
                    assert near(im.getpixel((48, 48)), (0, 200, 0))

                # A custom emoticon: fetched by the pool, an inline image in Matrix.
                conv = bob.conversation([ALICE])
                assert (await conv.submit([build_emoticon_payload([(":cat:", cat_obj)])], "A")).ok
                assert (await conv.send_text("look :cat: here")).ok
                room = await wait_invite(synapse, owner)
                await join(synapse, owner, room)
                event = await wait_for_event(
                    synapse, owner, room, lambda e: "look" in e["content"].get("body", "")
                )
                html = event["content"]["formatted_body"]
                src = re.search(r'<img data-mx-emoticon src="([^"]+)" alt=":cat:"', html)
                assert src is not None
                assert await download(synapse, src.group(1), owner.access_token) == cat

                # A voice clip: fetched by the pool, an audio file in Matrix.
                assert (await conv.submit([datacast], "A")).ok
                event = await wait_for_event(
                    synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.audio",
                    timeout=40,
                )  # fmt: skip
                content = event["content"]
                assert content["info"]["size"] == len(clip)
                assert await download(synapse, content["url"], owner.access_token) == clip
        finally:
            await bob.stop()
