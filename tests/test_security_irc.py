"""Isolation on IRC: two bridged IRC users with their own MSN logins and an outsider the
permissions do not allow. Nobody sees another user's contacts, channels or messages; the
outsider gets refusals. Real ngIRCd, the MSNP test server and the IRC side in-process."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from msnbridge.config import load_config
from msnbridge.core.account_commands import register_account_commands
from msnbridge.core.commands import CommandProcessor
from msnbridge.core.contact_commands import register_contact_commands
from msnbridge.core.portal_commands import register_portal_commands
from msnbridge.core.router import Router
from msnbridge.core.sessions import Sessions
from msnbridge.db import open_database
from msnbridge.irc.options import IRCOptions
from msnbridge.irc.side import IRCSide
from msnbridge.permissions import PermissionLevel, Permissions
from msnbridge.secrets import SecretBox
from tests.ircd import (
    IRCd,
    RawClient,
    command_of,
    ircd_fixture,  # noqa: F401 (fixture)
    message_text,
    running_ircd,
)
from tests.msnp_server import MSNPTestServer
from tests.synapse_server import free_port
from tests.test_irc_bridge import is_cmd, raw, seen_or_expect, write_config

pytestmark = pytest.mark.timeout(60)

ALICE, CAROL = "alice@example.com", "carol@example.com"
ALICE_ONLY, CAROL_ONLY = "dave@example.com", "erin@example.com"


@pytest.fixture
async def stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as exits:
        yield exits


@pytest.fixture
async def msn() -> AsyncIterator[MSNPTestServer]:
    async with MSNPTestServer() as server:
        for passport, nick in (
            (ALICE, "Alice"),
            (CAROL, "Carol"),
            (ALICE_ONLY, "Dave"),
            (CAROL_ONLY, "Erin"),
        ):
            server.add_account(passport, "pw", nick=nick)
        server.add_contact(ALICE, ALICE_ONLY)
        server.add_contact(CAROL, CAROL_ONLY)
        yield server


@contextlib.asynccontextmanager
async def running_side(config_path: Path) -> AsyncIterator[IRCSide]:
    """The IRC side with every shared command, as the daemon registers them."""
    config = load_config(str(config_path))
    db = await open_database(config["database"])
    sessions = Sessions(config, db, SecretBox(config["bridge.secret_key"]), login_timeout=15)
    router = Router(sessions, db)
    commands = CommandProcessor()
    register_account_commands(commands, sessions)
    register_contact_commands(commands, router)
    register_portal_commands(commands, router)
    side = IRCSide(
        IRCOptions.from_config(config),
        db,
        commands,
        Permissions(config["bridge.permissions"]),
        router,
    )
    await side.start(ready_timeout=10)
    try:
        yield side
    finally:
        await side.stop()
        await router.stop()
        await sessions.stop()
        await db.stop()


def test_irc_permission_entries() -> None:
    perms = Permissions({"irc:nick:Alice": "admin", "irc:*": "relay", "example.com": "user"})
    assert perms.level_for("irc:nick:alice") is PermissionLevel.ADMIN
    assert perms.level_for("irc:nick:mallory") is PermissionLevel.RELAY
    assert perms.level_for("@x:example.com") is PermissionLevel.USER
    assert Permissions({"irc:account:al": "user"}).level_for("irc:nick:al") is None
    with pytest.raises(ValueError, match="irc:nick:<nick>"):
        Permissions({"irc:nick:": "user"})


async def _reply(side: IRCSide, client: RawClient, text: str) -> str:
    """The bot's whole answer to ``text``, however many lines. Once the side has handled
    the command (every task it spawned is done), the test queues a marker NOTICE behind the
    answer: the bot sends a priority's lines in order, so the marker comes last."""
    assert side.bot is not None
    bot = side.bot.nick
    client.lines.clear()
    client.send(f"PRIVMSG {bot} :{text}")
    await client.expect(is_cmd("NOTICE", bot), 15)
    async with asyncio.timeout(15):
        while pending := [task for task in side._tasks if not task.done()]:
            await asyncio.wait(pending)
    marker = f"end of answer {secrets.token_hex(4)}"
    side.bot.notice(client.nick, marker)
    await client.expect(is_cmd("NOTICE", bot, marker), 15)
    return "\n".join(
        message_text(line)
        for line in client.lines
        if is_cmd("NOTICE", bot)(line) and marker not in line
    )


async def test_two_bridged_irc_users_and_an_outsider_are_kept_apart(
    tmp_path: Path, msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    config = write_config(tmp_path, msn, ircd)
    text = config.read_text().replace(
        '"permissions": {"*": "user"}',
        '"permissions": {"irc:nick:alice": "user", "irc:nick:carol": "user"}',
    )
    config.write_text(text)
    async with running_side(config) as side:
        assert side.bot is not None
        alice = await raw(stack, ircd, "alice")
        carol = await raw(stack, ircd, "carol")
        mallory = await raw(stack, ircd, "mallory")

        assert "Logged in to MSN" in await _reply(side, alice, f"login {ALICE} pw")
        assert "Logged in to MSN" in await _reply(side, carol, f"login {CAROL} pw")

        # Each sees only their own contacts.
        alice_contacts = await _reply(side, alice, "contacts")
        carol_contacts = await _reply(side, carol, "contacts")
        assert ALICE_ONLY in alice_contacts and CAROL_ONLY not in alice_contacts
        assert CAROL_ONLY in carol_contacts and ALICE_ONLY not in carol_contacts
        # Not an admin: no view of other sessions.
        assert ALICE not in await _reply(side, carol, "sessions")

        # The outsider is refused everything, and learns nothing.
        for command in ("help", "contacts", f"login {CAROL_ONLY} pw", "sessions"):
            answer = await _reply(side, mallory, command)
            assert "not allowed" in answer.lower() or "refus" in answer.lower(), answer
            assert ALICE_ONLY not in answer and CAROL_ONLY not in answer
        assert msn.online_sessions(CAROL_ONLY) == 0

        # Channels are invite-only: neither the other user nor the outsider gets in.
        for intruder in (carol, mallory):
            intruder.lines.clear()
            intruder.send("JOIN #msn-alice")
            refused = await intruder.expect(lambda line: command_of(line) in ("473", "JOIN"), 10)
            assert command_of(refused) == "473", refused


# --- issue 9 item 5: a bare nick is not an identity -------------------------------------

DAVE = ALICE_ONLY


@pytest.fixture
async def talkative_msn() -> AsyncIterator[MSNPTestServer]:
    """Alice's MSN contact Dave can write to her (both on each other's allow lists)."""
    async with MSNPTestServer() as server:
        server.add_account(ALICE, "pw", nick="Alice")
        server.add_account(DAVE, "pd", nick="Dave")
        server.add_contact(ALICE, DAVE, lists=("FL", "AL"))
        server.add_contact(DAVE, ALICE, lists=("FL", "AL"))
        yield server


def _every_irc_user_is_a_user(config: Path) -> Path:
    old, new = '"permissions": {"*": "user"}', '"permissions": {"irc:*": "user"}'
    text = config.read_text().replace(old, new)
    config.write_text(text)
    return config


async def _seen_by_the_bot(side: IRCSide, client: RawClient) -> None:
    """Returns once the bot has read everything ``client`` made the server send it so far:
    the bot answers a CTCP PING as it reads it, after the lines before it."""
    assert side.bot is not None
    token = secrets.token_hex(4)
    client.send(f"PRIVMSG {side.bot.nick} :\x01PING {token}\x01")
    await client.expect(is_cmd("NOTICE", side.bot.nick, f"\x01PING {token}\x01"), 10)


async def _no_invite(client, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(TimeoutError):
        line = await client.expect(lambda line: command_of(line) == "INVITE", seconds)
        raise AssertionError(f"the newcomer was invited: {line}")


@pytest.mark.parametrize("server", ["ircd", "services_inspircd"])
@pytest.mark.parametrize("was_in_a_channel", [True, False], ids=["seen-quit", "unseen-quit"])
async def test_taking_a_bare_nick_does_not_take_its_msn_login(
    tmp_path: Path,
    talkative_msn: MSNPTestServer,
    request: pytest.FixtureRequest,
    stack: contextlib.AsyncExitStack,
    was_in_a_channel: bool,
    server: str,
) -> None:
    """ngIRCd has no services, and on InspIRCd (account-tag, services linked) Alice has
    no account: her identity is her nick. She logs in from IRC and disconnects; Mallory
    takes the nick. Mallory gets no contact list, no invitation to a conversation, and
    cannot change the profile until she sends the MSN password."""
    from tests.puppet_helpers import online_client

    msn = talkative_msn
    ircd: IRCd = request.getfixturevalue(server)
    nick = f"victim{int(was_in_a_channel)}{server[0]}"
    config = _every_irc_user_is_a_user(write_config(tmp_path, msn, ircd))
    async with running_side(config) as side:
        assert side.bot is not None
        alice = await raw(stack, ircd, nick)
        assert "Logged in to MSN" in await _reply(side, alice, f"login {ALICE} pw")
        if was_in_a_channel:  # the usual case: the bot sees her QUIT
            invite = await seen_or_expect(alice, is_cmd("INVITE"))
            await alice.join(invite.split()[-1].lstrip(":"))
        await alice.close()
        if not was_in_a_channel:
            # The bot cannot see her go; only WHOIS (signon time) tells the connections apart.
            await asyncio.sleep(1.2)

        mallory = await raw(stack, ircd, nick)
        # Invitations Alice did not use are no way in: out of the contact list at once.
        mallory.send("JOIN #msn-alice")
        refused = await mallory.expect(lambda line: command_of(line) in ("473", "KICK"), 10)
        assert command_of(refused) in ("473", "KICK"), refused
        answer = await _reply(side, mallory, "contacts")
        assert DAVE not in answer and "Dave" not in answer, answer
        assert "password" in answer, answer
        answer = await _reply(side, mallory, "cancel")
        answer = await _reply(side, mallory, "psm owned by mallory")
        assert "Personal message set" not in answer, answer
        await _reply(side, mallory, "cancel")
        await asyncio.sleep(0.5)
        assert b"mallory" not in msn.account(ALICE).psm

        # Dave writes to Alice: the conversation channel is made, nobody is invited.
        dave, _ = await online_client(msn, DAVE, "pd")
        stack.push_async_callback(dave.stop)
        assert (await dave.conversation([ALICE]).send_text("secret for alice")).ok
        await _no_invite(mallory, 4)
        assert not any("secret" in line for line in mallory.lines)

        # A wrong password proves nothing.
        assert "password" in await _reply(side, mallory, "channels")
        assert "not the password" in await _reply(side, mallory, "guess")
        await _no_invite(mallory, 1)

        # The right one does (this is how Alice herself comes back): the pending command
        # runs and the channels are offered.
        await _reply(side, mallory, "channels")
        answer = await _reply(side, mallory, "pw")
        assert "recognised" in answer, answer
        await seen_or_expect(mallory, is_cmd("INVITE"), 10)
        assert DAVE in await _reply(side, mallory, "contacts")


async def test_trust_bare_nicks_is_the_old_insecure_behaviour(
    tmp_path: Path, talkative_msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    config = _every_irc_user_is_a_user(
        write_config(tmp_path, talkative_msn, ircd, trust_bare_nicks=True)
    )
    async with running_side(config) as side:
        assert side.bot is not None
        alice = await raw(stack, ircd, "trusting")
        assert "Logged in to MSN" in await _reply(side, alice, f"login {ALICE} pw")
        await alice.close()
        mallory = await raw(stack, ircd, "trusting")
        assert DAVE in await _reply(side, mallory, "contacts")


# --- services accounts on InspIRCd ------------------------------------------------------

SERVICES_PASSWORD = "svcpw"


@pytest.fixture(scope="module")
def services_inspircd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """InspIRCd 3 with account-tag, account-notify and extended-join, and a link block
    for the test services below (``FakeServices``): the only way to give users accounts
    without running Anope or Atheme."""
    services_port = free_port()
    extra = f"""
<module name="spanningtree">
<module name="services_account">
<module name="ircv3_accounttag">
<bind address="127.0.0.1" port="{services_port}" type="servers">
<link name="services.test" ipaddr="127.0.0.1" port="{services_port}" allowmask="127.0.0.0/8"
      sendpass="{SERVICES_PASSWORD}" recvpass="{SERVICES_PASSWORD}">
<uline server="services.test" silent="yes">
"""
    for server in running_ircd(
        tmp_path_factory.mktemp("inspircd-services"), "inspircd", extra_conf=extra
    ):
        server.services_port = services_port  # type: ignore[attr-defined]
        yield server


class FakeServices:
    """A services server linked to InspIRCd over its server protocol (1205), just enough
    to log users in to accounts: ``METADATA <uid> accountname :<account>``, what Anope and
    Atheme send after SASL or NickServ IDENTIFY."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.uids: dict[str, str] = {}  # lower nick → UID
        self.ready = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def link(cls, server: IRCd) -> FakeServices:
        reader, writer = await asyncio.open_connection(server.host, server.services_port)  # type: ignore[attr-defined]
        services = cls(reader, writer)
        for line in (
            "CAPAB START 1205",
            "CAPAB CAPABILITIES :CASEMAPPING=rfc1459",
            "CAPAB END",
            f"SERVER services.test {SERVICES_PASSWORD} 0 0SV :Test services",
        ):
            services.send(line)
        await asyncio.wait_for(services.ready.wait(), 10)
        return services

    def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")

    async def _read(self) -> None:
        while line := (await self.reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
            words = line.split()
            if words[0] == "SERVER":  # accepted: our (empty) burst
                self.send(f"BURST {int(time.time())}")
                self.send(":0SV ENDBURST")
            elif len(words) > 1 and words[1] == "ENDBURST":
                self.ready.set()
            elif len(words) > 4 and words[1] == "UID":
                self.uids[words[4].lower()] = words[2]
            elif len(words) > 3 and words[1] == "NICK":
                uid = words[0].lstrip(":")
                for nick, known in list(self.uids.items()):
                    if known == uid:
                        del self.uids[nick]
                self.uids[words[2].lower()] = uid
            elif len(words) > 2 and words[1] == "PING":
                self.send(f":0SV PONG {words[2]}")

    async def log_in(self, nick: str, account: str) -> None:
        async with asyncio.timeout(10):
            while nick.lower() not in self.uids:  # noqa: ASYNC110 - the UID line comes
                await asyncio.sleep(0.05)
        self.send(f":0SV METADATA {self.uids[nick.lower()]} accountname :{account}")

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def test_a_services_account_owns_its_login_and_its_nick_does_not(
    tmp_path: Path,
    talkative_msn: MSNPTestServer,
    services_inspircd: IRCd,
    stack: contextlib.AsyncExitStack,
) -> None:
    """InspIRCd with services: Alice logs in to her services account and to MSN, then
    disconnects. Mallory takes the nick without the account: nothing of Alice's login
    (contacts, invitations, her conversations). Alice comes back under another nick,
    logged in to the account: everything is hers at once, no password asked."""
    from tests.puppet_helpers import online_client

    msn, ircd = talkative_msn, services_inspircd
    services = await FakeServices.link(ircd)
    stack.push_async_callback(services.close)
    config = _every_irc_user_is_a_user(write_config(tmp_path, msn, ircd))
    async with running_side(config) as side:
        assert side.bot is not None
        assert {"account-tag", "account-notify", "extended-join"} <= side.bot.caps
        alice = await raw(stack, ircd, "alice")
        await services.log_in("alice", "alice_account")
        await alice.expect(lambda line: command_of(line) == "900")  # "You are now logged in"
        assert "Logged in to MSN" in await _reply(side, alice, f"login {ALICE} pw")
        assert side.router.sessions.get("irc:account:alice_account") is not None
        await alice.close()

        mallory = await raw(stack, ircd, "alice")
        answer = await _reply(side, mallory, "contacts")
        assert DAVE not in answer and "not logged in" in answer.lower(), answer
        dave, _ = await online_client(msn, DAVE, "pd")
        stack.push_async_callback(dave.stop)
        assert (await dave.conversation([ALICE]).send_text("for the account")).ok
        await _no_invite(mallory, 4)

        back = await raw(stack, ircd, "alice_back")
        await services.log_in("alice_back", "alice_account")
        await back.expect(lambda line: command_of(line) == "900")
        answer = await _reply(side, back, "channels")
        assert "password" not in answer and "#msn-alice" in answer, answer
        await seen_or_expect(back, is_cmd("INVITE", "#msn-alice-dave"), 10)
        assert DAVE in await _reply(side, back, "contacts")
        assert not any(command_of(line) == "INVITE" for line in mallory.lines)
        # Read and left: Dave's next message invites the account's nick again (the bot
        # shares no channel with it, so WHOIS 330 says who it is), and still not Mallory.
        await back.join("#msn-alice-dave")
        back.send("PART #msn-alice-dave")
        await back.expect(is_cmd("PART", "#msn-alice-dave"), 5)
        await _seen_by_the_bot(side, back)  # else Dave's message can overtake the PART
        back.lines.clear()
        assert (await dave.conversation([ALICE]).send_text("once more")).ok
        await back.expect(is_cmd("INVITE", "#msn-alice-dave"), 10)
        await _no_invite(mallory, 1)


class _Whois:
    """What the server answers to WHOIS, for the unit test of NickProofs alone."""

    def __init__(self) -> None:
        self.connection = "alice@host 1000"

    async def whois(self, nick: str):  # type: ignore[no-untyped-def]
        from msnbridge.irc.bot import WhoisAccount

        return WhoisAccount(nick, None, self.connection)


async def test_nick_proofs_check_the_stored_password_and_lock_out_guessing(
    tmp_path: Path,
) -> None:
    from msnbridge.db import user as user_db
    from msnbridge.irc.identity import identity_for
    from msnbridge.irc.proof import MAX_FAILURES, NickProofs

    db = await open_database(f"sqlite:{tmp_path / 'bridge.db'}")
    box = SecretBox("k" * 44)
    alice = identity_for("alice", None)
    stored = user_db.User(alice.id, "irc", ALICE, box.encrypt("right pw", context=alice.id))
    await user_db.save(db, stored)
    whois = _Whois()
    proofs = NickProofs(whois, db, box)  # type: ignore[arg-type]
    try:
        assert not await proofs.holds(alice)
        assert await proofs.holds(identity_for("bob", None))  # no login: nothing to prove
        assert await proofs.holds(identity_for("alice", "some_account"))  # vouched for
        assert not await proofs.prove(alice, "wrong")
        assert await proofs.prove(alice, "right pw")
        assert await proofs.holds(alice) and proofs.proven(alice.id)
        whois.connection = "alice@host 2000"  # another connection now holds the nick
        assert not await proofs.holds(alice) and not proofs.proven(alice.id)
        for _ in range(MAX_FAILURES):
            assert not await proofs.prove(alice, "guess")
        assert proofs.locked(alice)
        assert not await proofs.prove(alice, "right pw")  # even the right one, for now
        assert await NickProofs(whois, db, box, trust_bare_nicks=True).holds(alice)  # type: ignore[arg-type]
    finally:
        await db.stop()


async def test_a_bare_nick_admin_is_an_admin_only_once_proven(
    tmp_path: Path, talkative_msn: MSNPTestServer, ircd: IRCd, stack: contextlib.AsyncExitStack
) -> None:
    config = write_config(tmp_path, talkative_msn, ircd)
    old, new = '"permissions": {"*": "user"}', '"permissions": {"irc:nick:boss": "admin"}'
    config.write_text(config.read_text().replace(old, new))
    async with running_side(config) as side:
        assert side.bot is not None
        boss = await raw(stack, ircd, "boss")
        assert "needs admin rights" in await _reply(side, boss, "sessions")
        assert "Logged in to MSN" in await _reply(side, boss, f"login {ALICE} pw")
        assert ALICE in await _reply(side, boss, "sessions")
        await boss.close()
        # The bot shares no channel with boss and cannot see him go; only WHOIS (signon
        # time, in whole seconds) tells the connections apart.
        await asyncio.sleep(1.2)
        impostor = await raw(stack, ircd, "boss")
        answer = await _reply(side, impostor, "sessions")
        assert ALICE not in answer and "password" in answer, answer
