"""Unit tests of the IRC side's pieces: configuration keys, channel names, identities,
puppet nicks and away texts. (End-to-end behaviour: tests/test_irc_bridge.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from msnbridge.config import Config, ConfigError
from msnbridge.irc import channels
from msnbridge.irc.contactlist import away_text
from msnbridge.irc.identity import identity_for
from msnbridge.irc.options import IRCOptions, OfflineStyle, PuppetMode
from puppets import Contact


def config_with(tmp_path: Path, irc: dict[str, Any]) -> Config:
    path = tmp_path / "bridge.yaml"
    # Config.check also compares msn.min/max_version (checked first in a real start-up).
    msn = {"min_version": 2, "max_version": 12}
    path.write_text(json.dumps({"irc": {"enabled": True, **irc}, "msn": msn}))
    config = Config(str(path))
    config.load()
    return config


def test_defaults_and_values(tmp_path: Path) -> None:
    options = IRCOptions.from_config(
        config_with(
            tmp_path,
            {
                "server": {"host": "irc.example.net", "port": 6697, "tls": True},
                "puppets": {"mode": "relay", "max_connections": 3},
                "offline": {"style": "quit", "quit_debounce": 10},
            },
        )
    )
    assert options.host == "irc.example.net" and options.port == 6697 and options.tls
    assert options.puppet_mode is PuppetMode.RELAY and options.max_connections == 3
    assert options.offline_style is OfflineStyle.QUIT and options.quit_debounce == 10.0
    assert options.contact_list_channel == "#msn-{user}"
    assert options.public_conversations is False
    bot = options.connection_settings("MSNBot", bot=True)
    assert "account-tag" in bot.caps and bot.realname == "MSN Messenger bridge"
    puppet = options.connection_settings("Bob[m]", username="bob.smith")
    assert puppet.username == "bobsmith" and puppet.caps == frozenset({"message-tags"})
    assert puppet.sasl_username is None


@pytest.mark.parametrize(
    ("irc", "message"),
    [
        ({}, "irc.server.host: missing"),
        ({"server": {"host": "h", "port": 70000}}, "irc.server.port: expected a port"),
        (
            {"server": {"host": "h"}, "puppets": {"mode": "many"}},
            "irc.puppets.mode: expected one of",
        ),
        ({"server": {"host": "h"}, "channels": {"direct": "#msn-{user}"}}, "{contact}"),
        ({"server": {"host": "h"}, "channels": {"group": "msn-{user}-{hash}"}}, "start with #"),
        ({"server": {"host": "h"}, "offline": {"style": "vanish"}}, "irc.offline.style"),
        ({"server": {"host": "h"}, "limits": {"lines_per_second": 0}}, "above 0"),
        ({"server": {"host": "h"}, "puppets": {"nick_template": "msn"}}, "{nick}"),
        ({"server": {"host": "h"}, "public_conversations": "yes"}, "true or false"),
        (
            {"server": {"host": "h"}, "files": {"public_media_url": "matrix.example.org"}},
            "irc.files.public_media_url: expected empty or an http(s) URL",
        ),
    ],
)
def test_wrong_values_name_the_key(tmp_path: Path, irc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IRCOptions.from_config(config_with(tmp_path, irc))
    assert message in str(caught.value)


def test_channel_names_are_deterministic_and_fit() -> None:
    direct = channels.conversation_name(
        "#msn-{user}-{contact}", "#msn-{user}-g{hash}", "Alice@x.com", ["bob@y.com"], 50, "#"
    )
    assert direct == "#msn-alice-bob"
    group = channels.conversation_name(
        "#msn-{user}-{contact}", "#msn-{user}-g{hash}", "alice@x.com", ["c@y", "b@y"], 50, "#"
    )
    again = channels.conversation_name(
        "#msn-{user}-{contact}", "#msn-{user}-g{hash}", "alice@x.com", ["B@y", "c@y"], 50, "#"
    )
    assert group == again and group.startswith("#msn-alice-g") and len(group) == 18
    long = channels.conversation_name(
        "#msn-{user}-{contact}", "#g{hash}", "a" * 40 + "@x", ["b" * 40 + "@y"], 20, "#"
    )
    assert len(long.encode()) == 20
    assert channels.contact_list_name("#msn-{user}", "my name@x.com", 50, "#") == "#msn-my_name"
    assert channels.numbered("#" + "x" * 19, 2, 20) == "#" + "x" * 17 + "-2"


def test_identities() -> None:
    vouched = identity_for("Someone", "AliceAccount")
    assert vouched.id == "irc:account:aliceaccount" and vouched.vouched
    bare = identity_for("Alice", None)
    assert bare.id == "irc:nick:alice" and not bare.vouched
    # The same account under another nick is the same bridged user.
    assert identity_for("other", "aliceaccount").id == vouched.id


def test_away_texts() -> None:
    assert away_text(Contact("b@x", status="NLN")) is None
    assert away_text(Contact("b@x", status="BSY", psm="meeting")) == "Busy: meeting"
    assert away_text(Contact("b@x", status="LUN")) == "Out to lunch"
    assert away_text(Contact("b@x", status="FLN")) == "Offline"


def test_the_example_configuration_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "bridge.yaml.example"
    config = Config(str(example))
    config.load()
    config.check(allow_generate=True)
    options = IRCOptions.from_config(config)
    assert options.host == "irc.example.net" and options.puppet_mode is PuppetMode.AUTO


def test_p4_context_header_in_text_payloads() -> None:
    from puppets.message import TextMessage, parse_payload, split_text

    payloads = split_text("x" * 3000, extra_headers=[("P4-Context", "guest")])
    assert len(payloads) == 2 and all(len(p) <= 1664 for p in payloads)
    parsed = [parse_payload(p) for p in payloads]
    assert all(isinstance(m, TextMessage) and m.context == "guest" for m in parsed)
    assert "".join(m.text for m in parsed if isinstance(m, TextMessage)) == "x" * 3000
    plain = parse_payload(split_text("hi")[0])
    assert isinstance(plain, TextMessage) and plain.context == ""


def test_the_irc_side_implements_the_side_protocol() -> None:
    from msnbridge.core.commands import CommandProcessor
    from msnbridge.core.sides import Side
    from msnbridge.irc.side import IRCSide
    from msnbridge.permissions import Permissions

    options = IRCOptions(host="irc.example.net")
    side = IRCSide(options, None, CommandProcessor(), Permissions({}), None)  # type: ignore[arg-type]
    assert isinstance(side, Side) and side.name == "irc"
