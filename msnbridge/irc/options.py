"""The ``irc:`` section of bridge.yaml: declared keys (checked by ``Config.check``) and the
typed view the IRC side reads."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Any

from ..config import Config, Option
from .settings import DEFAULT_CAPS, IRCSettings


class PuppetMode(enum.StrEnum):
    CONNECTIONS = "connections"  # one IRC connection per MSN participant
    RELAY = "relay"  # the bot speaks for everyone as <Nick> text
    AUTO = "auto"  # connections, relay when capped or refused


class OfflineStyle(enum.StrEnum):
    AWAY = "away"  # offline contacts stay, AWAY :Offline
    QUIT = "quit"  # offline contacts quit after a debounce


def _one_of(*values: str):  # type: ignore[no-untyped-def]
    def check(value: str) -> str | None:
        return None if value in values else f"expected one of {', '.join(values)}"

    return check


def _positive(value: float) -> str | None:
    return None if value > 0 else "expected a number above 0"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "expected 0 or more"


def _template(*fields: str):  # type: ignore[no-untyped-def]
    def check(value: str) -> str | None:
        if not value.startswith(("#", "&")):
            return "a channel name template must start with # or &"
        missing = [f for f in fields if "{" + f + "}" not in value]
        if missing:
            return f"must contain {', '.join('{' + f + '}' for f in missing)}"
        try:
            value.format(**{f: "x" for f in ("user", "contact", "hash")})
        except (KeyError, IndexError, ValueError):
            return "may use only {user}, {contact} and {hash}"
        return None

    return check


def _nick_template(value: str) -> str | None:
    if "{nick}" not in value:
        return "must contain {nick}"
    try:
        value.format(nick="x", passport="x")
    except (KeyError, IndexError, ValueError):
        return "may use only {nick} and {passport}"
    return None


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "expected a port number from 1 to 65535"


NUMBER = (int, float)


def _public_url(value: str) -> str | None:
    if value and not re.match(r"https?://[^/\s]+(/\S*)?$", value):
        return "expected empty or an http(s) URL such as https://matrix.example.org/_matrix/media/v3/download"
    return None


IRC_OPTIONS: tuple[Option, ...] = (
    Option("irc.server.host", str, example="irc.example.net"),
    Option("irc.server.port", int, 6667, _port, "6697"),
    Option("irc.server.tls", bool, False),
    Option("irc.server.tls_verify", bool, True),
    Option("irc.server.password", str, ""),
    Option("irc.sasl.account", str, ""),
    Option("irc.sasl.password", str, ""),
    Option("irc.bot.nick", str, "MSNBot", example="MSNBot"),
    Option("irc.bot.realname", str, "MSN Messenger bridge"),
    Option("irc.channels.contact_list", str, "#msn-{user}", _template("user"), "#msn-{user}"),
    Option(
        "irc.channels.direct",
        str,
        "#msn-{user}-{contact}",
        _template("user", "contact"),
        "#msn-{user}-{contact}",
    ),
    Option("irc.channels.group", str, "#msn-{user}-g{hash}", _template("user", "hash")),
    Option("irc.public_conversations", bool, False),
    Option("irc.trust_bare_nicks", bool, False),
    Option("irc.matrix_portals", bool, True),
    Option("irc.puppets.mode", str, "auto", _one_of(*PuppetMode), "auto (or connections, relay)"),
    Option("irc.puppets.max_connections", int, 50, _not_negative, "50"),
    Option("irc.puppets.nick_template", str, "{nick}[m]", _nick_template, "{nick}[m]"),
    Option("irc.relay.prefix", str, "<{nick}> ", example="'<{nick}> '"),
    Option("irc.relay.merge_seconds", NUMBER, 1.0, _not_negative, "1.0"),
    Option("irc.limits.lines_per_second", NUMBER, 2.0, _positive, "2.0"),
    Option("irc.limits.burst", int, 5, _positive, "5"),
    Option("irc.limits.max_lines_per_message", int, 10, _positive, "10"),
    Option("irc.reconnect.initial_backoff", NUMBER, 5.0, _positive, "5"),
    Option("irc.reconnect.max_backoff", NUMBER, 1800.0, _positive, "1800"),
    Option("irc.reconnect.concurrency", int, 3, _positive, "3"),
    Option("irc.offline.style", str, "away", _one_of(*OfflineStyle), "away (or quit)"),
    Option("irc.offline.quit_debounce", NUMBER, 30.0, _not_negative, "30"),
    # Where the homeserver's media can be fetched without a login (…/_matrix/media/v3/download
    # of a homeserver without authenticated media, or a media proxy): files from MSN become
    # links there. Empty: IRC users get a notice with the file's name and size instead.
    Option(
        "irc.files.public_media_url",
        str,
        "",
        _public_url,
        "https://matrix.example.org/_matrix/media/v3/download",
    ),
)


@dataclass(frozen=True)
class IRCOptions:
    host: str
    port: int = 6667
    tls: bool = False
    tls_verify: bool = True
    password: str = ""
    sasl_account: str = ""
    sasl_password: str = ""
    bot_nick: str = "MSNBot"
    realname: str = "MSN Messenger bridge"
    contact_list_channel: str = "#msn-{user}"
    direct_channel: str = "#msn-{user}-{contact}"
    group_channel: str = "#msn-{user}-g{hash}"
    public_conversations: bool = False
    # Insecure: a bare nick (no services account) owns its MSN login without proving it.
    trust_bare_nicks: bool = False
    matrix_portals: bool = True  # Matrix users' conversations get a channel too
    puppet_mode: PuppetMode = PuppetMode.AUTO
    max_connections: int = 50
    nick_template: str = "{nick}[m]"
    relay_prefix: str = "<{nick}> "
    merge_seconds: float = 1.0
    lines_per_second: float = 2.0
    burst: int = 5
    max_lines: int = 10
    backoff_initial: float = 5.0
    backoff_max: float = 1800.0
    reconnect_concurrency: int = 3
    offline_style: OfflineStyle = OfflineStyle.AWAY
    quit_debounce: float = 30.0

    @classmethod
    def from_config(cls, config: Config) -> IRCOptions:
        """Checks the ``irc.*`` keys (ConfigError names the key and the fix) and reads them."""
        config.check(IRC_OPTIONS)
        c: Any = config
        return cls(
            host=c["irc.server.host"],
            port=c["irc.server.port"],
            tls=c["irc.server.tls"],
            tls_verify=c["irc.server.tls_verify"],
            password=c["irc.server.password"],
            sasl_account=c["irc.sasl.account"],
            sasl_password=c["irc.sasl.password"],
            bot_nick=c["irc.bot.nick"],
            realname=c["irc.bot.realname"],
            contact_list_channel=c["irc.channels.contact_list"],
            direct_channel=c["irc.channels.direct"],
            group_channel=c["irc.channels.group"],
            public_conversations=c["irc.public_conversations"],
            trust_bare_nicks=c["irc.trust_bare_nicks"],
            matrix_portals=c["irc.matrix_portals"],
            puppet_mode=PuppetMode(c["irc.puppets.mode"]),
            max_connections=c["irc.puppets.max_connections"],
            nick_template=c["irc.puppets.nick_template"],
            relay_prefix=c["irc.relay.prefix"],
            merge_seconds=float(c["irc.relay.merge_seconds"]),
            lines_per_second=float(c["irc.limits.lines_per_second"]),
            burst=c["irc.limits.burst"],
            max_lines=c["irc.limits.max_lines_per_message"],
            backoff_initial=float(c["irc.reconnect.initial_backoff"]),
            backoff_max=float(c["irc.reconnect.max_backoff"]),
            reconnect_concurrency=c["irc.reconnect.concurrency"],
            offline_style=OfflineStyle(c["irc.offline.style"]),
            quit_debounce=float(c["irc.offline.quit_debounce"]),
        )

    def connection_settings(
        self, nick: str, *, bot: bool = False, username: str | None = None
    ) -> IRCSettings:
        """Settings for the bot (SASL, account caps) or a send-only puppet connection.
        ``username``: letters and digits only (servers refuse [ ] | in user names)."""
        user = re.sub(r"[^A-Za-z0-9]", "", username or nick)[:10] or "msn"
        settings = IRCSettings(
            host=self.host,
            port=self.port,
            nick=nick,
            username=user,
            realname=self.realname if bot else nick,
            password=self.password or None,
            tls=self.tls,
            tls_verify=self.tls_verify,
            rate=self.lines_per_second,
            burst=float(self.burst),
            max_lines_per_message=self.max_lines,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
        )
        if bot:
            # The bot reads: it wants to know which services account speaks to it.
            caps = DEFAULT_CAPS | {"account-tag", "account-notify", "extended-join"}
            return replace(
                settings,
                caps=caps,
                sasl_username=self.sasl_account or None,
                sasl_password=self.sasl_password or None,
            )
        # Puppets only send: no echo, no away-notify; they never authenticate as the bot.
        return replace(settings, caps=frozenset({"message-tags"}))
