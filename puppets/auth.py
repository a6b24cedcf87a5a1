"""Authentication: MD5 (MSNP2-7) and Passport 1.4 "TWN" tickets (MSNP8+) over HTTP(S)."""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from .errors import AuthenticationError, PuppetError

DEFAULT_NEXUS_URL = "https://nexus.passport.com/rdr/pprdr.asp"
_ORG = "OrgVerb=GET,OrgURL=http%3A%2F%2Fmessenger%2Emsn%2Ecom"
_FROM_PP = re.compile(r"from-PP='([^']*)'")


def md5_response(salt: str, password: str) -> str:
    """The MSNP2-7 answer to ``USR t MD5 S salt``."""
    return hashlib.md5((salt + password).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PassportConfig:
    nexus_url: str = DEFAULT_NEXUS_URL
    login_url: str | None = None  # skip the Nexus and log in here directly
    verify_tls: bool = True
    timeout: float = 30.0


class PassportUnavailable(PuppetError):
    """The Nexus or login server could not be reached or answered nonsense."""


def _ssl_arg(verify: bool) -> ssl.SSLContext | bool:
    return True if verify else False


def _header(headers: aiohttp.typedefs.LooseHeaders, name: str) -> str | None:
    # aiohttp's CIMultiDict is case-insensitive already; stay tolerant of odd spacing.
    value = headers.get(name)  # type: ignore[union-attr]
    return value.strip() if isinstance(value, str) else None


def _login_url_from_nexus(passport_urls: str, nexus_url: str) -> str:
    for item in passport_urls.split(","):
        key, _, value = item.partition("=")
        if key.strip().lower() == "dalogin" and value:
            value = value.strip()
            if "://" not in value:
                scheme = "http" if nexus_url.startswith("http://") else "https"
                value = f"{scheme}://{value}"
            return value
    raise PassportUnavailable("the Nexus answered without a DALogin address")


async def twn_ticket(
    passport: str,
    password: str,
    challenge: str,
    config: PassportConfig,
    session: aiohttp.ClientSession | None = None,
) -> str:
    """Exchange credentials and the TWN challenge string for a ticket (``t=...&p=...``)."""
    own = session is None
    if session is None:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.timeout))
    try:
        login_url = config.login_url
        ssl_arg = _ssl_arg(config.verify_tls)
        try:
            if login_url is None:
                async with session.get(config.nexus_url, ssl=ssl_arg) as resp:
                    urls = _header(resp.headers, "PassportURLs")
                    if resp.status != 200 or not urls:
                        raise PassportUnavailable(
                            f"the Nexus at {config.nexus_url} answered HTTP {resp.status} "
                            "without PassportURLs"
                        )
                login_url = _login_url_from_nexus(urls, config.nexus_url)
            auth = (
                f"Passport1.4 {_ORG},sign-in={quote(passport, safe='')},"
                f"pwd={quote(password, safe='')},{challenge}"
            )
            async with session.get(
                login_url, headers={"Authorization": auth}, ssl=ssl_arg, allow_redirects=False
            ) as resp:
                info = _header(resp.headers, "Authentication-Info") or ""
                if resp.status == 401 or "da-status=failed" in info:
                    raise AuthenticationError("Passport refused the passport or password")
                if resp.status in (301, 302):
                    raise PassportUnavailable(
                        f"the login server redirected to {resp.headers.get('Location')!r}; "
                        "set the login URL to that address"
                    )
                match = _FROM_PP.search(info)
                if resp.status != 200 or match is None:
                    raise PassportUnavailable(
                        f"the login server at {login_url} answered HTTP {resp.status} "
                        "without a ticket"
                    )
                return match.group(1)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise PassportUnavailable(f"Passport login failed: {e.__class__.__name__}: {e}") from e
    finally:
        if own:
            await session.close()
