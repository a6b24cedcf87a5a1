"""A long Matrix message reaches the MSN peer in parts cut at word boundaries, and a long
run of emoji ZWJ sequences in parts that each hold whole sequences. Real Synapse, the MSNP
test server, the bridge in-process, bob as a real puppet client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from puppets.event.conversation import MessageReceived
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import SynapseServer, running_bridge, send_text
from tests.test_matrix_portals import (  # noqa: F401 (msn is a fixture)
    BOB,
    _dm_room,
    alice_seen_online,
    friend,
    log_in,
    msn,
    settings,
)

WORDS = "The quick brown fox jumps over the lazy dog. " * 80
CODER = "👩\u200d💻"


async def test_long_messages_reach_msn_cut_at_words_and_clusters(
    synapse: SynapseServer,
    bridge_config: Callable[..., Path],
    msn: MSNPTestServer,  # noqa: F811
) -> None:
    owner = await synapse.register_user()
    bob, bob_events = await friend(msn, BOB)
    try:
        async with running_bridge(bridge_config(**settings(msn))):
            await log_in(synapse, owner)
            await alice_seen_online(bob_events)
            room = await _dm_room(synapse, owner, bob, "send me the long one")
            text = WORDS.strip()
            await send_text(synapse, owner, room, text)
            parts: list[str] = []

            def whole(expected: str) -> bool:
                got = [e.message.text for e in bob_events.of(MessageReceived)]
                for first in range(len(got)):
                    for last in range(first, len(got)):
                        if "".join(got[first : last + 1]) == expected:
                            parts[:] = got[first : last + 1]
                            return True
                return False

            await bob_events.until(lambda: whole(text), timeout=20)
            assert len(parts) >= 2
            for part in parts[:-1]:
                assert part.endswith(" "), f"cut mid-word: …{part[-20:]!r}"
            assert all(part.split(" ")[0] in text.split(" ") for part in parts)

            emoji = CODER * 400  # no space anywhere: only the clusters decide
            await send_text(synapse, owner, room, emoji)
            await bob_events.until(lambda: whole(emoji), timeout=20)
            assert len(parts) >= 2
            assert all(len(part) % len(CODER) == 0 for part in parts), [len(p) for p in parts]
    finally:
        await bob.stop()
