"""Nothing is lost or doubled when the bridge is SIGKILLed in the middle of a two-way
conversation and restarted: 200 numbered messages each way between a Matrix user (real
Synapse) and an MSN contact (a puppet on the test MSNP server), counted on both sides.

The MSN contact behaves as a person would: a message their client reports as not
delivered (alice offline while the bridge is down) is sent again; one it reports
delivered is never sent again. The Matrix user sends each message once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from msnbridge.config import load_config
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, room_events, running_bridge, send_text
from tests.test_faults_msn import fast_friend, texts
from tests.test_faults_process import daemon, daemon_logging
from tests.test_matrix_portals import (
    ALICE,
    BOB,
    _dm_room,
    alice_seen_online,
    bot_id,
    ghost_id,
    log_in,
    msn,  # noqa: F401 (fixture)
    settings,
)

pytestmark = pytest.mark.timeout(600)
N = 200
KILL_AFTER = 60  # messages seen each way before the kill


async def _logged(path: Path, text: str) -> bool:
    return text in await asyncio.to_thread(path.read_text)


async def all_room_events(synapse: SynapseServer, user, room: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every event of the room, oldest first (room_events gives the latest 100)."""
    events: list[dict] = []
    token = None
    while True:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=500"
        if token:
            path += f"&from={quote(token)}"
        reply = await synapse.request("GET", path, token=user.access_token)
        events.extend(reply["chunk"])
        token = reply.get("end")
        if not reply["chunk"] or not token:
            return list(reversed(events))


async def failure_reports(synapse: SynapseServer, owner, room: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The bot's "Not delivered" notices in the room, all of them."""
    bot = bot_id(synapse)
    return [
        e["content"].get("body", "")
        for e in await all_room_events(synapse, owner, room)
        if e["sender"] == bot and "Not delivered" in e["content"].get("body", "")
    ]


async def poll(condition: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.5)
    return False


async def test_sigkill_during_a_two_way_stream_loses_and_doubles_nothing(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "bridge.log"
    config = bridge_config(**settings(msn), logging=daemon_logging(log_file))
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    ghost = ghost_id(synapse, BOB)
    seen_in_matrix: list[str] = []

    async def matrix_texts() -> list[str]:
        events = await all_room_events(synapse, owner, room)
        return [
            e["content"].get("body", "")
            for e in events
            if e["type"] == "m.room.message" and e["sender"] == ghost
        ]

    async def from_bob() -> None:
        for i in range(N):
            # Not delivered (alice offline while the bridge is down): sent again, as a
            # person would.
            for _ in range(600):
                if (await bob.conversation([ALICE]).send_text(f"n2m {i}")).ok:
                    break
                await asyncio.sleep(0.2)

    async def from_owner() -> None:
        for i in range(N):
            await send_text(synapse, owner, room, f"m2n {i}")

    try:
        async with daemon(synapse, config, tmp_path) as proc:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "start")
            senders = [asyncio.create_task(from_bob()), asyncio.create_task(from_owner())]

            async def midway() -> bool:
                got = [t for t in texts(bob_events) if t.startswith("m2n ")]
                seen_in_matrix[:] = await matrix_texts()
                return len(got) >= KILL_AFTER and len(seen_in_matrix) >= KILL_AFTER

            assert await poll(midway, 120), (len(texts(bob_events)), len(seen_in_matrix))
            proc.kill()
            await proc.wait()
        await asyncio.sleep(3)
        async with daemon(synapse, config, tmp_path) as proc:
            await asyncio.wait_for(asyncio.gather(*senders), 180)

            async def all_arrived() -> bool:
                got = {t for t in texts(bob_events) if t.startswith("m2n ")}
                mine = {t for t in await matrix_texts() if t.startswith("n2m ")}
                return len(got) >= N and len(mine) >= N

            await poll(all_arrived, 120)  # what is missing is counted below
            await asyncio.sleep(1)
            to_msn = collections.Counter(t for t in texts(bob_events) if t.startswith("m2n "))
            to_matrix = collections.Counter(t for t in await matrix_texts() if t.startswith("n2m "))
            failures = await failure_reports(synapse, owner, room)
            # Synapse was recovering at the restart: the bridge has it resend whatever it
            # stored (a transaction its scheduler can strand then would be lost otherwise).
            await poll(lambda: _logged(log_file, "Synapse resent its stored transactions"), 30)
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
        report = {
            "lost to MSN": sorted(set(range(N)) - {int(t.split()[1]) for t in to_msn}),
            "doubled to MSN": sorted(t for t, n in to_msn.items() if n > 1),
            "lost to Matrix": sorted(set(range(N)) - {int(t.split()[1]) for t in to_matrix}),
            "doubled to Matrix": sorted(t for t, n in to_matrix.items() if n > 1),
            "failure reports": failures,
        }
        lost_or_doubled = {k: v for k, v in list(report.items())[:4] if v}
        assert not lost_or_doubled, f"{lost_or_doubled}; failure reports: {failures}"
        logged = log_file.read_text()
        assert "Asked Synapse to resend" in logged
        assert "Synapse resent its stored transactions" in logged
    finally:
        await bob.stop()


async def _killed_while_sending(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
    text: str,
    fault: Callable[[bool], None],
    faulted: Callable[[], bool],
) -> tuple[list[str], list[str]]:
    """Owner and bob talk; then ``fault(True)`` makes the owner's next message ``text``
    hang on its way to MSN until ``faulted()``, the bridge is SIGKILLed there, the fault
    is lifted and the bridge restarted. Returns what bob got of ``text`` and the
    failure reports in the room once things settled."""
    config = bridge_config(**settings(msn), logging=daemon_logging(tmp_path / "bridge.log"))
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with daemon(synapse, config, tmp_path) as proc:
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "start")
            await send_text(synapse, owner, room, "before")
            await bob_events.until(lambda: "before" in texts(bob_events), timeout=30)
            fault(True)
            await send_text(synapse, owner, room, text)
            for _ in range(300):
                if faulted():
                    break
                await asyncio.sleep(0.05)
            assert faulted(), "the message never reached the fault"
            await asyncio.sleep(0.2)  # whatever the bridge does next, it does not get far
            proc.kill()
            await proc.wait()
        fault(False)
        async with daemon(synapse, config, tmp_path) as proc:
            await send_text(synapse, owner, room, "after")
            await bob_events.until(lambda: "after" in texts(bob_events), timeout=60)
            await asyncio.sleep(1)
            reports = await failure_reports(synapse, owner, room)
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
        return [t for t in texts(bob_events) if t == text], reports
    finally:
        await bob.stop()


async def test_a_message_killed_before_it_was_written_goes_out_at_the_next_start(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The switchboard it waits for never opens (the server leaves XFR unanswered) and
    the bridge is killed: not a byte of it went to MSN, so it is sent at the next start,
    once, with no failure report (it used to be reported "may not have arrived" and
    never sent)."""

    def end_switchboards_and_hold(on: bool) -> None:
        if on:  # the next message needs a new switchboard, which does not come
            assert msn.hub.switchboards is not None
            msn.hub.switchboards.close_all("test")
        msn.hold_switchboard_requests(ALICE, on)

    got, reports = await _killed_while_sending(
        synapse, bridge_config, msn, tmp_path, "held up",
        end_switchboards_and_hold, lambda: msn.stats.xfr_held > 0,
    )  # fmt: skip
    assert got == ["held up"], got
    assert reports == [], reports


async def test_a_message_that_may_have_reached_msn_is_reported_not_sent_twice(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Written to the switchboard but not confirmed (the server swallows it) when the
    bridge is killed: the bridge cannot know whether MSN has it, so the next start says
    so and does not send it again (MSN cannot recognise a repeat)."""
    got, reports = await _killed_while_sending(
        synapse, bridge_config, msn, tmp_path, "unconfirmed",
        lambda on: msn.swallow_messages(ALICE, on), lambda: msn.stats.messages_swallowed > 0,
    )  # fmt: skip
    assert got == [], got
    assert len(reports) == 1 and "may not have arrived" in reports[0], reports


async def test_a_message_for_a_session_being_restored_waits_for_it(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The homeserver hands over a message while the bridge, restarted, has not restored
    the sender's MSN session yet (restore made slow on purpose): it waits and goes out."""
    from msnbridge.bridge import Bridge

    config = bridge_config(**settings(msn), **{"bridge.secret_key": secrets.token_urlsafe(32)})
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        async with running_bridge(config):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "before the restart")
        restore = Sessions.restore

        async def slow_restore(self: Sessions, *args: object, **kwargs: object) -> int:
            await asyncio.sleep(3)
            return await restore(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Sessions, "restore", slow_restore)
        bridge = Bridge(load_config(str(config)))
        starting = asyncio.create_task(bridge.start())
        try:
            url = f"{synapse.appservice.url}/_matrix/mau/ready"
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with session.get(url) as resp:
                            if resp.status == 200:
                                break
                    await asyncio.sleep(0.05)
            assert not starting.done()  # the sessions are still being restored
            await send_text(synapse, owner, room, "while restoring")
            await starting
            await bob_events.until(lambda: "while restoring" in texts(bob_events), timeout=30)
            bot = bot_id(synapse)
            assert not [
                e
                for e in await room_events(synapse, owner, room)
                if e["sender"] == bot and "Not delivered" in e["content"].get("body", "")
            ]
        finally:
            if not starting.done():
                starting.cancel()
            await bridge.stop()
    finally:
        await bob.stop()


async def test_an_event_taken_but_not_handled_at_the_stop_is_handled_at_the_next_start(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The appservice answers a transaction before its events are handled; an event still
    unhandled when the bridge goes away (stuck here on purpose, then cancelled at the
    stop) is handled once at the next start."""
    config = bridge_config(**settings(msn), **{"bridge.secret_key": secrets.token_urlsafe(32)})
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        send = Router.send

        async def stuck_send(self: Router, portal: Any, *args: Any, **kwargs: Any) -> Any:
            if "stuck" in args[3].plain():
                await asyncio.Event().wait()  # until cancelled at the stop
            return await send(self, portal, *args, **kwargs)

        monkeypatch.setattr(Router, "send", stuck_send)
        async with running_bridge(config):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hi")
            await send_text(synapse, owner, room, "stuck")
            await send_text(synapse, owner, room, "after it")  # same room: waits behind it
            await asyncio.sleep(1)
        assert not [t for t in texts(bob_events) if t in ("stuck", "after it")]
        monkeypatch.setattr(Router, "send", send)
        async with running_bridge(config):
            await bob_events.until(lambda: "after it" in texts(bob_events), timeout=30)
            await asyncio.sleep(0.5)
        got = [t for t in texts(bob_events) if t in ("stuck", "after it")]
        assert got == ["stuck", "after it"]
    finally:
        await bob.stop()


async def test_a_message_for_a_login_that_cannot_be_restored_says_why(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    """The stored password cannot be read after bridge.secret_key changed: a message in the
    owner's portal is reported with that reason, not "you are not logged in"."""
    owner = await synapse.register_user()
    bob, bob_events = await fast_friend(msn, BOB)
    try:
        first = {**settings(msn), "bridge.secret_key": secrets.token_urlsafe(32)}
        async with running_bridge(bridge_config(**first)):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "hi")
        second = {**settings(msn), "bridge.secret_key": secrets.token_urlsafe(32)}
        async with running_bridge(bridge_config(**second)):
            await send_text(synapse, owner, room, "after the key changed")
            bot = bot_id(synapse)
            for _ in range(100):
                reports = [
                    e["content"].get("body", "")
                    for e in await room_events(synapse, owner, room)
                    if e["sender"] == bot and "Not delivered" in e["content"].get("body", "")
                ]
                if reports:
                    break
                await asyncio.sleep(0.2)
            assert reports, "no failure report"
            assert "could not be restored" in reports[0], reports
            assert "not logged in" not in reports[0], reports
    finally:
        await bob.stop()
