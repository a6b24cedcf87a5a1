"""Where the SOAP services live: one ``services_url`` with the standard paths, each
overridable (a revival server serves them all on its own host, often over plain HTTP)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

DEFAULT_SERVICES_URL = "https://login.live.com"
# The real service's hosts; used when no services_url is set.
_LIVE = {
    "rst": "https://login.live.com/RST.srf",
    "abch": "https://contacts.msn.com/abservice/abservice.asmx",
    "sharing": "https://contacts.msn.com/abservice/SharingService.asmx",
    "oim": "https://ows.messenger.msn.com/OimWS/oim.asmx",
    "rsi": "https://rsi.hotmail.com/rsi/rsi.asmx",
}
PATHS = {
    "rst": "/RST.srf",
    "abch": "/abservice/abservice.asmx",
    "sharing": "/abservice/SharingService.asmx",
    "oim": "/OimWS/oim.asmx",
    "rsi": "/rsi/rsi.asmx",
}


@dataclass(frozen=True, slots=True)
class ServiceURLs:
    rst: str
    abch: str
    sharing: str
    oim: str
    rsi: str

    @classmethod
    @functools.lru_cache(maxsize=64)  # frozen: every session of one server shares one
    def build(
        cls,
        services_url: str | None = None,
        *,
        rst_url: str | None = None,
        abch_url: str | None = None,
        sharing_url: str | None = None,
        oim_url: str | None = None,
        rsi_url: str | None = None,
    ) -> ServiceURLs:
        if services_url:
            base = services_url.rstrip("/")
            urls = {name: base + path for name, path in PATHS.items()}
        else:
            urls = dict(_LIVE)
        overrides = {
            "rst": rst_url,
            "abch": abch_url,
            "sharing": sharing_url,
            "oim": oim_url,
            "rsi": rsi_url,
        }
        urls.update({k: v for k, v in overrides.items() if v})
        return cls(**urls)
