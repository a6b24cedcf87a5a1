"""Malformed appservice transaction bodies (with a valid hs_token) against the running
appservice over HTTP: 400 M_BAD_JSON, one log line, no traceback; the bridge goes on."""

from __future__ import annotations

import logging
import os
from typing import Any

import aiohttp
import pytest

from msnbridge.bridge import Bridge
from tests.synapse_server import SynapseServer

MALFORMED: list[tuple[str, Any]] = [
    ("events-a-string", {"events": "x"}),
    ("list-body", [{"events": []}]),
    ("events-not-objects", {"events": [1, "two", None]}),
    ("events-mixed", {"events": [{"type": "m.room.message"}, ["nested"]]}),
    ("ephemeral-a-number", {"events": [], "ephemeral": 5}),
    ("string-body", "just a string"),
]


@pytest.mark.parametrize(("name", "body"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_transaction_bodies_get_400_bad_json(
    synapse: SynapseServer,
    bridge: Bridge,
    caplog: pytest.LogCaptureFixture,
    name: str,
    body: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    base = f"{synapse.appservice.url}/_matrix/app/v1/transactions"
    headers = {"Authorization": f"Bearer {synapse.appservice.hs_token}"}
    async with aiohttp.ClientSession() as session:
        caplog.clear()
        async with session.put(f"{base}/bad-{name}-{os.getpid()}", json=body, headers=headers) as r:
            assert r.status == 400
            answer = await r.json()
        assert answer["errcode"] == "M_BAD_JSON"
        assert answer["error"]
        refused = [r for r in caplog.records if "Refused transaction" in r.getMessage()]
        assert len(refused) == 1, [r.getMessage() for r in caplog.records]
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # The appservice still handles a good transaction.
        async with session.put(
            f"{base}/good-{name}-{os.getpid()}", json={"events": []}, headers=headers
        ) as r:
            assert r.status == 200
