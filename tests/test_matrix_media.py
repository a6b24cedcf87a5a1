"""Pictures and files with the whole bridge: a real Synapse, the MSNP test server, and the
MSN contact a puppet client in this process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import re
import struct
import wave
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp
from PIL import Image

from msnbridge.core.msn_emoticons import emoticons_in_html
from puppets.event.contact import PresenceChanged
from puppets.event.transfer import FileOffered
from puppets.mime import build_message
from puppets.msnobject import TYPE_EMOTICON, TYPE_VOICE_CLIP, TYPE_WINK, MSNObject
from puppets.p2p.service import build_emoticon_payload
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, is_notice_from, running_bridge, wait_for_event
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    bot_id,
    friend,
    ghost_id,
    join,
    log_in,
    msn,  # noqa: F401  (fixture)
    put_event,
    settings,
    until,
    wait_invite,
)


def tiny_png(seed: bytes) -> bytes:
    """A valid 4x4 RGB PNG whose pixels depend on ``seed``."""
    raw = b"".join(b"\x00" + (seed * 12)[:12] for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def striped_png(width: int, height: int, middle: tuple[int, int, int]) -> bytes:
    """A noisy RGB PNG: red left and blue right thirds, ``middle`` in the centre third."""
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    im = Image.new("RGB", (width, height), (255, 0, 0))
    im.paste((0, 0, 255), (2 * width // 3, 0, width, height))
    im.paste(middle, (width // 3, 0, 2 * width // 3, height))
    im = Image.blend(im, noise, 0.05)  # noise keeps the file large, colours stay clear
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


async def download(synapse: SynapseServer, mxc: str, token: str) -> bytes:
    server_name, media_id = mxc.removeprefix("mxc://").split("/", 1)
    url = f"{synapse.url}/_matrix/client/v1/media/download/{server_name}/{media_id}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_a_contacts_display_picture_becomes_the_ghosts_avatar(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    config = bridge_config(**settings(msn))
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    picture = tiny_png(os.urandom(3))
    obj: MSNObject | None = await bob.set_display_picture(picture)
    assert obj is not None
    try:
        async with running_bridge(config) as bridge:
            await log_in(synapse, owner)
            ghost = ghost_id(synapse, BOB)

            async def avatar() -> str | None:
                try:
                    profile = await synapse.request(
                        "GET",
                        f"/_matrix/client/v3/profile/{quote(ghost)}",
                        token=owner.access_token,
                    )
                except Exception:
                    return None
                return profile.get("avatar_url")

            await until(avatar, timeout=30)
            mxc = await avatar()
            assert mxc is not None
            data = await download(synapse, mxc, owner.access_token)
            assert base64.b64encode(hashlib.sha1(data).digest()).decode() == obj.sha1d
            # The mxc is remembered per SHA1D: a new picture replaces it, the old stays known.
            second = tiny_png(os.urandom(3))
            obj2 = await bob.set_display_picture(second)
            assert obj2 is not None

            async def changed() -> bool:
                return (await avatar()) not in (None, mxc)

            await until(changed, timeout=30)
            new = await avatar()
            assert new is not None
            assert await download(synapse, new, owner.access_token) == second
            db = bridge.db
            assert await db.fetchval("SELECT mxc FROM media WHERE sha1d=$1", obj.sha1d) == mxc
            assert await db.fetchval("SELECT mxc FROM media WHERE sha1d=$1", obj2.sha1d) == new
            assert bridge.sessions is not None and bridge.sessions.pictures.fetches == 2
        # After a restart the login is restored; the picture shown already is not fetched.
        async with running_bridge(config) as bridge:
            assert bridge.sessions is not None and bridge.router is not None
            sessions, router = bridge.sessions, bridge.router

            def bob_seen() -> bool:
                client = sessions.get(owner.user_id)
                contact = client.contacts.get(BOB) if client is not None else None
                return contact is not None and contact.msnobject is not None

            await until(bob_seen, timeout=30)
            await router.events.drain()
            await asyncio.sleep(1.0)  # room for a fetch that should not start
            assert sessions.pictures.fetches == 0
            assert await avatar() == new
    finally:
        await bob.stop()


async def test_a_file_from_msn_arrives_in_matrix_and_one_over_the_limit_is_refused(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    config = bridge_config(
        **settings(msn, files={"max_incoming_size": 1_000_000, "temp_dir": str(tmp_path / "t")})
    )
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    data = os.urandom(300_000)
    src = tmp_path / "holiday notes.bin"
    src.write_bytes(data)
    image = tiny_png(b"abc")
    img = tmp_path / "pic.png"
    img.write_bytes(image)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 1_000_001)
    try:
        async with running_bridge(config):
            management = await log_in(synapse, owner)
            sent = bob.p2p.manager.send_file(ALICE, src)
            assert await sent.wait(timeout=60) == "completed"
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            ghost = ghost_id(synapse, BOB)
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.file"
            )
            assert event["sender"] == ghost
            content = event["content"]
            assert content["body"] == "holiday notes.bin"
            assert content["info"]["size"] == len(data)
            assert await download(synapse, content["url"], owner.access_token) == data

            pic = bob.p2p.manager.send_file(ALICE, img)
            assert await pic.wait(timeout=60) == "completed"
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.image"
            )
            info = event["content"]["info"]
            assert (info["mimetype"], info["w"], info["h"]) == ("image/png", 4, 4)
            assert await download(synapse, event["content"]["url"], owner.access_token) == image

            # A photo: its size from Pillow, and a thumbnail within 320 px that decodes.
            photo = tmp_path / "beach.jpg"
            Image.new("RGB", (1000, 600), (0, 160, 255)).save(photo, "JPEG")
            sent = bob.p2p.manager.send_file(ALICE, photo)
            assert await sent.wait(timeout=60) == "completed"
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("body") == "beach.jpg"
            )
            content = event["content"]
            assert content["msgtype"] == "m.image"
            info = content["info"]
            assert (info["mimetype"], info["w"], info["h"]) == ("image/jpeg", 1000, 600)
            assert await download(synapse, content["url"], owner.access_token) == (
                photo.read_bytes()
            )
            thumb = await download(synapse, info["thumbnail_url"], owner.access_token)
            with Image.open(io.BytesIO(thumb)) as shown:
                assert shown.size == (320, 192)
                assert near(shown.getpixel((160, 96)), (0, 160, 255))
            assert info["thumbnail_info"] == {
                "mimetype": "image/jpeg",
                "size": len(thumb),
                "w": 320,
                "h": 192,
            }

            # A damaged picture is not lost: it arrives as a file, byte for byte, unthumbnailed.
            broken = tmp_path / "broken.png"
            broken_data = image[:40] + os.urandom(2000)
            broken.write_bytes(broken_data)
            sent = bob.p2p.manager.send_file(ALICE, broken)
            assert await sent.wait(timeout=60) == "completed"
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("body") == "broken.png"
            )
            content = event["content"]
            assert content["msgtype"] == "m.file"
            assert "thumbnail_url" not in content["info"]
            assert content["info"]["mimetype"] == "image/png"
            assert await download(synapse, content["url"], owner.access_token) == broken_data

            refused = bob.p2p.manager.send_file(ALICE, big)
            assert await refused.wait(timeout=30) == "declined"
            await wait_for_event(
                synapse, owner, management, is_notice_from(bot_id(synapse), "larger than")
            )
            assert list((tmp_path / "t").iterdir()) == []  # nothing left waiting on disk
    finally:
        await bob.stop()


async def upload(synapse: SynapseServer, token: str, data: bytes, mime: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{synapse.url}/_matrix/media/v3/upload?filename=x",
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": mime},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return (await resp.json())["content_uri"]


async def test_a_matrix_image_arrives_at_the_msn_peer_byte_for_byte(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    config = bridge_config(**settings(msn, files={"max_outgoing_size": 500_000}))
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    image = tiny_png(b"xyz") + os.urandom(200_000)  # a PNG header, then bulk
    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            assert (await bob.conversation([ALICE]).send_text("send me the photo")).ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            mxc = await upload(synapse, owner.access_token, image, "image/png")
            content = {
                "msgtype": "m.image",
                "body": "photo.png",
                "url": mxc,
                "info": {"mimetype": "image/png", "size": len(image)},
            }
            await put_event(synapse, owner, room, "m.room.message", content)
            offer = await bob_events.wait_for(FileOffered, timeout=30)
            assert (offer.sender, offer.name, offer.size) == (ALICE, "photo.png", len(image))
            dest = tmp_path / "got.png"
            offer.transfer.accept(dest)
            assert await offer.transfer.wait(timeout=60) == "completed"
            assert dest.read_bytes() == image

            # Declined by the contact, and too large for the bridge: both said in the room.
            await put_event(synapse, owner, room, "m.room.message", {**content, "body": "b.png"})
            offer = await bob_events.wait_for(FileOffered, lambda e: e.name == "b.png", timeout=30)
            offer.transfer.decline()
            bot = bot_id(synapse)
            await wait_for_event(synapse, owner, room, is_notice_from(bot, "declined"))
            big = {**content, "body": "huge.png", "info": {"size": 600_000}}
            await put_event(synapse, owner, room, "m.room.message", big)
            await wait_for_event(synapse, owner, room, is_notice_from(bot, "over the limit"))
    finally:
        await bob.stop()


async def test_the_owners_matrix_avatar_becomes_their_msn_display_picture(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    config = bridge_config(**settings(msn))
    owner = await synapse.register_user()
    # Wide, large (well over 256 KiB) and not square: Messenger shows its centre, 96x96.
    first = striped_png(1200, 400, (0, 200, 0))
    assert len(first) > 256 * 1024
    mxc = await upload(synapse, owner.access_token, first, "image/png")
    profile = f"/_matrix/client/v3/profile/{quote(owner.user_id)}/avatar_url"
    await synapse.request("PUT", profile, {"avatar_url": mxc}, token=owner.access_token)
    bob, bob_events = await friend(msn, BOB)

    def shown(data: bytes, colour: tuple[int, int, int]) -> None:
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size) == ("PNG", (96, 96))
            for x, y in ((2, 2), (48, 48), (93, 93), (2, 93)):
                assert near(im.getpixel((x, y)), colour), (x, y, im.getpixel((x, y)))

    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            seen = await bob_events.wait_for(
                PresenceChanged,
                lambda e: e.passport == ALICE and e.msnobject is not None,
                timeout=30,
            )
            got = await bob.p2p.manager.fetch_object(ALICE, seen.msnobject, timeout=20)
            assert got is not None and seen.msnobject.matches(got)
            shown(got, (0, 200, 0))  # the centre square only, not squashed stripes
            # A new avatar (a JPEG) reaches the rooms as a member event: the picture follows.
            jpeg = io.BytesIO()
            Image.new("RGB", (300, 500), (200, 0, 200)).save(jpeg, "JPEG")
            mxc2 = await upload(synapse, owner.access_token, jpeg.getvalue(), "image/jpeg")
            await synapse.request("PUT", profile, {"avatar_url": mxc2}, token=owner.access_token)
            again = await bob_events.wait_for(
                PresenceChanged,
                lambda e: (
                    e.passport == ALICE
                    and e.msnobject is not None
                    and e.msnobject.sha1d != seen.msnobject.sha1d
                ),
                timeout=30,
            )
            got = await bob.p2p.manager.fetch_object(ALICE, again.msnobject, timeout=20)
            assert got is not None
            shown(got, (200, 0, 200))
    finally:
        await bob.stop()


def test_emoticons_become_inline_images_only_in_text() -> None:
    html = '<strong>a :cat: b</strong> <a href="x:cat:y">:cat:</a> &lt;3 (dog)'
    got = emoticons_in_html(
        html, ((":cat:", "mxc://s/c"), ("(dog)", "mxc://s/d"), ("<3", "mxc://s/h"))
    )
    cat = '<img data-mx-emoticon src="mxc://s/c" alt=":cat:" title=":cat:" height="32">'
    assert got.count(cat) == 2
    assert 'href="x:cat:y"' in got  # never inside a tag
    assert 'alt="&lt;3"' in got and 'src="mxc://s/d"' in got


async def test_custom_emoticons_from_msn_become_inline_images(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    config = bridge_config(**settings(msn))
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    cat = tiny_png(b"cat")
    obj = MSNObject.for_data(BOB, cat, TYPE_EMOTICON)
    bob.p2p.manager.serve_object(obj, cat)
    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            conv = bob.conversation([ALICE])
            assert (await conv.submit([build_emoticon_payload([(":cat:", obj)])], "A")).ok
            assert (await conv.send_text("look :cat: here")).ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            event = await wait_for_event(
                synapse, owner, room, lambda e: "look" in e["content"].get("body", "")
            )
            content = event["content"]
            assert content["body"] == "look :cat: here"
            src = re.search(
                r'<img data-mx-emoticon src="([^"]+)" alt=":cat:"', content["formatted_body"]
            )
            assert src is not None
            assert await download(synapse, src.group(1), owner.access_token) == cat
    finally:
        await bob.stop()


async def test_a_wink_is_said_in_words(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    config = bridge_config(**settings(msn))
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    wink = MSNObject.for_data(BOB, b"MSCF cabinet", TYPE_WINK)
    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            datacast = build_message(
                [("Content-Type", "text/x-msnmsgr-datacast")],
                f"ID: 2\r\nData: {wink.build()}\r\n\r\n".encode(),
            )
            assert (await bob.conversation([ALICE]).submit([datacast], "A")).ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.emote"
            )
            assert event["content"]["body"] == "sent a wink (not shown here)"
            assert event["sender"] == ghost_id(synapse, BOB)
    finally:
        await bob.stop()


def wav_clip() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(os.urandom(16000))  # half a second of noise
    return out.getvalue()


async def test_a_voice_clip_that_comes_whole_is_an_audio_file_else_said_in_words(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    config = bridge_config(**settings(msn))
    owner = await synapse.register_user()
    bob, _ = await friend(msn, BOB)
    clip = wav_clip()
    obj = MSNObject.for_data(BOB, clip, TYPE_VOICE_CLIP)
    bob.p2p.manager.serve_object(obj, clip)
    # A clip bob cannot serve (he never had its data): said in words, as before.
    lost = MSNObject.for_data(BOB, wav_clip(), TYPE_VOICE_CLIP)

    def datacast(o: MSNObject) -> bytes:
        return build_message(
            [("Content-Type", "text/x-msnmsgr-datacast")],
            f"ID: 3\r\nData: {o.build()}\r\n\r\n".encode(),
        )

    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            conv = bob.conversation([ALICE])
            assert (await conv.submit([datacast(obj)], "A")).ok
            room = await wait_invite(synapse, owner)
            await join(synapse, owner, room)
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.audio"
            )
            assert event["sender"] == ghost_id(synapse, BOB)
            content = event["content"]
            assert content["info"]["size"] == len(clip)
            assert content["info"]["mimetype"] == "audio/x-wav"
            assert await download(synapse, content["url"], owner.access_token) == clip

            assert (await conv.submit([datacast(lost)], "A")).ok
            event = await wait_for_event(
                synapse, owner, room, lambda e: e["content"].get("msgtype") == "m.emote", timeout=60
            )
            assert event["content"]["body"] == "sent a voice clip (not shown here)"
    finally:
        await bob.stop()
