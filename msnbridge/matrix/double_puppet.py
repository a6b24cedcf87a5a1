"""Double puppeting: the bridge speaks in a portal as the owner's own Matrix account.

What the owner writes from their own Messenger (MSNP16+ MPOP, another endpoint of the same
MSN account) is sent into the portal as the owner themself, the way mautrix bridges do it:
with the as_token of a second, non-exclusive appservice registration whose users namespace
covers the owner's homeserver, and the ``user_id`` query parameter (appservice
masquerading; no login, so no device and no access token to keep). Configured per
homeserver under ``bridge.double_puppet`` with mautrix-go's names::

    double_puppet:
        servers: {other.example: https://matrix.other.example}   # not homeserver.domain
        secrets: {example.com: "as_token:<the registration's as_token>"}

A secret that is not ``as_token:…`` is a login shared secret (mautrix's
``login_shared_secret_map``, for homeservers with the shared-secret-auth module): the bridge
logs in as the owner once per run (``com.devture.shared_secret_auth``, else
``m.login.password``, with HMAC-SHA512(secret, user ID)), on one fixed device, and keeps
the access token in memory only.

Events sent so carry ``fi.mau.double_puppet_source: msn`` (mautrix adds it for real-user
intents), which is how the bridge knows them as its own when they come back in a
transaction, and does not send them to MSN again.

An owner whose homeserver has no secret, or whose homeserver refuses the token, gets
None: the caller falls back to a notice by the bot (refusals are logged once per owner).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mautrix.appservice import DOUBLE_PUPPET_SOURCE_KEY, IntentAPI
from mautrix.client import ClientAPI
from mautrix.errors import MatrixError
from mautrix.types import LoginType, MatrixUserIdentifier, UserID

if TYPE_CHECKING:
    from .appservice import MatrixSide

log = logging.getLogger("msnbridge.matrix.double_puppet")

AS_TOKEN_PREFIX = "as_token:"
LOGIN_DEVICE = "MSNBRIDGE_DOUBLE_PUPPET"  # one device per owner, reused by every login
BRIDGE_NAME = "msn"  # the value of fi.mau.double_puppet_source (BridgeAppService bridge_name)


def check_secrets(value: Mapping[str, Any]) -> str | None:
    """Config check of bridge.double_puppet.secrets: {domain: "as_token:<token>" or a
    login shared secret}."""
    for domain, secret in value.items():
        if not isinstance(secret, str) or not secret.strip():
            return (
                f"the secret for {domain} must be 'as_token:<token>' (the as_token of the "
                f"double-puppet registration) or a login shared secret"
            )
        if secret.startswith(AS_TOKEN_PREFIX) and not secret.removeprefix(AS_TOKEN_PREFIX).strip():
            return f"the secret for {domain} has an empty as_token"
    return None


def check_servers(value: Mapping[str, Any]) -> str | None:
    for domain, url in value.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return f"the homeserver of {domain} must be an http:// or https:// URL"
    return None


def is_double_puppet_echo(content: Any) -> bool:
    """Whether event content was sent by this bridge as a double puppet."""
    get = getattr(content, "get", None)
    return get is not None and get(DOUBLE_PUPPET_SOURCE_KEY) == BRIDGE_NAME


class DoublePuppets:
    def __init__(self, side: MatrixSide) -> None:
        self.side = side
        config = side.config
        self._secrets: dict[str, str] = {
            str(domain): str(secret).strip()
            for domain, secret in (config["bridge.double_puppet.secrets"] or {}).items()
        }
        self._tokens: dict[str, str] = {}  # owner → access token of a shared-secret login
        servers = config["bridge.double_puppet.servers"] or {}
        self._servers = {str(domain): str(url) for domain, url in servers.items()}
        self._refused: set[str] = set()  # owners whose homeserver refused: fall back, said once

    def configured_for(self, user_id: str) -> bool:
        return _domain(user_id) in self._secrets

    async def intent(self, user_id: str) -> IntentAPI | None:
        """The owner's own intent (as_token + user_id, or a shared-secret login), or None:
        not configured for their homeserver, or their homeserver refused it this run."""
        domain = _domain(user_id)
        secret = self._secrets.get(domain)
        if secret is None or user_id in self._refused:
            return None
        if domain == self.side.domain:
            base_url = self.side.config["homeserver.address"]
        elif domain in self._servers:
            base_url = self._servers[domain]
        else:
            self._refuse(user_id, f"no homeserver URL for {domain} in bridge.double_puppet.servers")
            return None
        az = self.side.az.intent
        other_url = None if domain == self.side.domain else base_url  # None: the bridge's
        if secret.startswith(AS_TOKEN_PREFIX):
            token = secret.removeprefix(AS_TOKEN_PREFIX).strip()
            return az.user(UserID(user_id), token, other_url, as_token=True)
        token = self._tokens.get(user_id)
        if token is None:
            try:
                token = await self._login(user_id, secret, base_url)
            except (MatrixError, OSError) as e:
                self._refuse(user_id, f"shared-secret login failed: {e}")
                return None
            self._tokens[user_id] = token
        return az.user(UserID(user_id), token, other_url)

    async def _login(self, user_id: str, secret: str, base_url: str) -> str:
        """A login as ``user_id`` with the shared secret (as mautrix bridges do it)."""
        client = ClientAPI(base_url=base_url, client_session=self.side.az.http_session)
        flows = await client.get_login_flows()
        flow = flows.get_first_of_type(LoginType.DEVTURE_SHARED_SECRET, LoginType.PASSWORD)
        if flow is None:
            raise MatrixError("the homeserver offers no password or shared-secret login")
        mac = hmac.new(secret.encode(), user_id.encode(), hashlib.sha512).hexdigest()
        key = "token" if flow.type == LoginType.DEVTURE_SHARED_SECRET else "password"
        reply = await client.login(
            identifier=MatrixUserIdentifier(user=user_id),
            login_type=flow.type,
            device_id=LOGIN_DEVICE,
            device_name="MSN bridge (double puppeting)",
            store_access_token=False,
            **{key: mac},
        )
        return reply.access_token

    def refused(self, user_id: str, error: Exception) -> None:
        """The homeserver refused to let the bridge act as ``user_id``: fall back for the
        rest of this run."""
        self._tokens.pop(user_id, None)
        self._refuse(user_id, str(error))

    def _refuse(self, user_id: str, why: str) -> None:
        if user_id in self._refused:
            return
        self._refused.add(user_id)
        log.warning(
            "Double puppeting %s does not work (%s); their messages from another Messenger "
            "are shown as notices of the bridge bot instead. Check bridge.double_puppet and "
            "the double-puppet registration (msnbridge -g --double-puppet-registration) or the "
            "shared secret.",
            user_id,
            why,
        )


def _domain(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""
