"""Settings of one puppet session."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .auth import DEFAULT_NEXUS_URL, PassportConfig
from .soap.endpoints import ServiceURLs

_GUID = re.compile(r"^\{[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}$")

LOWEST_VERSION = 2
HIGHEST_VERSION = 18


@dataclass(slots=True)
class ClientConfig:
    passport: str
    password: str = field(repr=False)
    dispatch_host: str = "messenger.hotmail.com"
    dispatch_port: int = 1863
    nexus_url: str = DEFAULT_NEXUS_URL
    login_url: str | None = None
    verify_tls: bool = True
    min_version: int = LOWEST_VERSION
    max_version: int = HIGHEST_VERSION
    product_id: str | None = None  # CHL answers; None = PROTOCOL.md's default pair
    product_key: str | None = field(default=None, repr=False)
    caps: int = 0  # client-id capability bits sent with CHG from MSNP8
    # MSNP16+: extended capability bits after "caps:". None: P2P v2 (0x20), so v2-capable
    # peers use the v2 P2P framing with us; 0 keeps every transfer on the v1 framing.
    ext_caps: int | None = None
    initial_status: str = "NLN"
    locale: str = "0x0409"
    client_version: str = "6.0.0602"
    timeout: float = 30.0  # per request and per connect
    sync_timeout: float = 120.0  # a 500-contact SYN over a slow link
    ping_interval: float = 45.0  # when the server's QNG names no interval
    change_spacing: float = 2.0  # seconds between CHG/REA/PRP/UUX (servers answer 800)
    backoff_initial: float = 2.0
    backoff_max: float = 300.0
    backoff_stable_after: float = 60.0  # online this long resets the backoff
    sb_idle_timeout: float = 180.0
    offline_send_timeout: float = 60.0  # how long a message waits for a reconnect
    max_redirects: int = 3
    reconnect: bool = True  # False: the first failure stops the client (scripts, the CLI)
    # MSNP13-18: the SOAP services (one base URL with the standard paths, each overridable).
    services_url: str | None = None
    rst_url: str | None = None
    abch_url: str | None = None
    sharing_url: str | None = None
    oim_url: str | None = None
    rsi_url: str | None = None
    # MSNP16+: this endpoint's machine GUID ("{...}"); keep it across restarts so the
    # owner's other endpoints are not thrown out. None: a new one per Client.
    machine_guid: str | None = None
    endpoint_name: str = "msnbridge"  # MSNP18: how the owner's Messenger lists this endpoint

    def __post_init__(self) -> None:
        if not LOWEST_VERSION <= self.min_version <= self.max_version <= HIGHEST_VERSION:
            raise ValueError(
                f"version range MSNP{self.min_version}-MSNP{self.max_version} is outside "
                f"MSNP{LOWEST_VERSION}-MSNP{HIGHEST_VERSION}"
            )
        if "@" not in self.passport:
            raise ValueError(f"passport {self.passport!r} is not an e-mail address")
        if self.machine_guid is not None and not _GUID.match(self.machine_guid):
            raise ValueError(
                f"machine GUID {self.machine_guid!r} is not of the form "
                "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}"
            )

    @property
    def versions(self) -> list[int]:
        return list(range(self.max_version, self.min_version - 1, -1))

    @property
    def service_urls(self) -> ServiceURLs:
        return ServiceURLs.build(
            self.services_url,
            rst_url=self.rst_url,
            abch_url=self.abch_url,
            sharing_url=self.sharing_url,
            oim_url=self.oim_url,
            rsi_url=self.rsi_url,
        )

    @property
    def passport_config(self) -> PassportConfig:
        return PassportConfig(
            nexus_url=self.nexus_url,
            login_url=self.login_url,
            verify_tls=self.verify_tls,
            timeout=self.timeout,
        )
