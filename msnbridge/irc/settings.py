"""Settings of one IRC client connection (filled from the bridge configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .refusal import RefusalKind

# IRCv3 capabilities we use when the server offers them. ``sasl`` is added only when SASL
# credentials are configured.
DEFAULT_CAPS = frozenset(
    {
        "message-tags",
        "server-time",
        "echo-message",
        "away-notify",
        "multi-prefix",
        "batch",
        "draft/relaymsg",
    }
)


@dataclass(slots=True)
class IRCSettings:
    host: str
    port: int = 6667
    nick: str = "msnbridge"
    username: str | None = None  # defaults to the nick
    realname: str | None = None  # defaults to the nick
    password: str | None = field(default=None, repr=False)  # server password (PASS)
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_verify: bool = True
    tls_ca_file: str | None = None  # trust this CA (self-signed networks) instead of the system's
    bind_host: str | None = None  # local address to connect from
    caps: frozenset[str] = DEFAULT_CAPS
    ctcp_version: str = "msnbridge"

    # Flood control: tokens per second, bucket size; a line costs 1 + bytes/bytes_per_token.
    rate: float = 2.0
    burst: float = 5.0
    bytes_per_token: int = 512
    queue_size: int = 1000
    max_lines_per_message: int = 10

    # Reconnection.
    backoff_initial: float = 5.0
    backoff_max: float = 1800.0
    backoff_stable: float = 300.0
    backoff_jitter: float = 0.5
    # Refusals that stop reconnection (the caller falls back, e.g. to relay mode).
    final_refusals: frozenset[RefusalKind] = frozenset(
        {RefusalKind.BANNED, RefusalKind.BAD_PASSWORD}
    )

    # Timers (seconds).
    connect_timeout: float = 30.0
    registration_timeout: float = 60.0
    motd_grace: float = 5.0  # after 001, how long to wait for end of MOTD
    ping_interval: float = 120.0  # this long without traffic → we PING
    ping_timeout: float = 60.0  # and this long more without traffic → reconnect
    nick_regain_interval: float = 60.0  # retry the wanted nick while we have another
    rejoin_timeout: float = 10.0  # after reconnect, wait this long for JOINs before messages

    @property
    def sasl(self) -> bool:
        return bool(self.sasl_username and self.sasl_password)
