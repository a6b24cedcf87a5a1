"""Run the test server as a process: prints one JSON line with its addresses once
listening, then serves until SIGTERM/SIGINT.

    python -m tests.msnp_server --accounts accounts.json [--no-chl] [--demo N] ...

With ``--control``, fault injection for benchmarks: one JSON command per stdin line, one
JSON answer per stdout line, e.g.
``{"command": "flood_presence", "passport": "a@x", "count": 30000, "seconds": 3}``
→ ``{"sent": 30000}`` (NLN lines for strangers down that account's NS connection).

accounts.json: a list of {"passport", "password", "nick", "msnobj", "contacts": [passport
or {"passport", "lists", "groups"}], "groups": [name]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from pathlib import Path
from typing import Any

from .server import MSNPTestServer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.msnp_server", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dispatch-port", type=int, default=0)
    p.add_argument("--ns-port", type=int, default=0)
    p.add_argument("--sb-port", type=int, default=0)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--accounts", help="JSON file of accounts")
    p.add_argument("--demo", type=int, default=0, help="create N demo accounts")
    p.add_argument("--demo-contacts", type=int, default=50)
    p.add_argument("--min-version", type=int, default=2)
    p.add_argument("--max-version", type=int, default=18)
    p.add_argument("--no-chl", action="store_true", help="never send CHL (revival style)")
    p.add_argument("--chl-interval", type=float, default=None)
    p.add_argument("--ticket-ttl", type=float, default=30.0)
    p.add_argument("--no-redirect", action="store_true", help="dispatch port serves NS itself")
    p.add_argument("--no-nak", action="store_true")
    p.add_argument("--qng-interval", type=int, default=50)
    p.add_argument("--idle-timeout", type=float, default=None)
    p.add_argument("--control", action="store_true", help="fault-injection commands on stdin")
    return p


def load_accounts(server: MSNPTestServer, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        account = server.add_account(entry["passport"], entry["password"], nick=entry.get("nick"))
        # A display picture object, offered in presence as servers do (its client, when one
        # signs in, announces its own with CHG).
        account.msnobj = entry.get("msnobj", "")
    for entry in entries:
        for name in entry.get("groups", []):
            server.add_group(entry["passport"], name)
        for contact in entry.get("contacts", []):
            if isinstance(contact, str):
                contact = {"passport": contact}
            server.add_contact(
                entry["passport"],
                contact["passport"],
                lists=tuple(contact.get("lists", ("FL", "AL"))),
                groups=tuple(contact.get("groups", ())),
            )


def demo_accounts(server: MSNPTestServer, count: int, contacts: int) -> None:
    """``user{i}@example.com`` / ``password{i}``, each with ``contacts`` of the others
    (mutual FL+AL, so presence flows both ways)."""
    for i in range(count):
        server.add_account(f"user{i}@example.com", f"password{i}", nick=f"User {i}")
    rng = random.Random(1863)
    for i in range(count):
        # Indices into "everyone but i" (the same picks as sampling that list, without
        # building it: 10,000 accounts would make it 10^8 items).
        for k in rng.sample(range(count - 1), min(contacts, count - 1)):
            j = k if k < i else k + 1
            server.add_contact(f"user{i}@example.com", f"user{j}@example.com")


def build(args: argparse.Namespace) -> MSNPTestServer:
    server = MSNPTestServer(
        versions=(args.min_version, args.max_version),
        send_chl=not args.no_chl,
        chl_interval=args.chl_interval,
        ticket_ttl=args.ticket_ttl,
        redirect=not args.no_redirect,
        send_nak=not args.no_nak,
        qng_interval=args.qng_interval,
        idle_timeout=args.idle_timeout,
        host=args.host,
        dispatch_port=args.dispatch_port,
        ns_port=args.ns_port,
        sb_port=args.sb_port,
        http_port=args.http_port,
    )
    if args.accounts:
        load_accounts(server, json.loads(Path(args.accounts).read_text(encoding="utf-8")))
    if args.demo:
        demo_accounts(server, args.demo, args.demo_contacts)
    return server


async def _control(server: MSNPTestServer) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        try:
            if request["command"] == "flood_presence":
                sent = await server.flood_presence(
                    request["passport"],
                    int(request.get("count", 30_000)),
                    seconds=float(request.get("seconds", 3.0)),
                )
                answer: dict[str, Any] = {"sent": sent}
            elif request["command"] == "stats":  # totals: one line, however many accounts
                stats = server.stats
                answer = {"account_logins": stats.account_logins.total(),
                          "sign_outs": stats.sign_outs.total()}  # fmt: skip
            else:
                answer = {"error": f"unknown command {request['command']!r}"}
        except KeyError as e:
            answer = {"error": f"not signed in or missing key: {e}"}
        print(json.dumps(answer), flush=True)


async def _serve(server: MSNPTestServer, control: bool = False) -> None:
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps(server.addresses()), flush=True)
    controller = loop.create_task(_control(server)) if control else None
    await stop.wait()
    if controller is not None:
        controller.cancel()
    await server.stop(graceful=True)
    print(json.dumps({"stats": server.stats.as_dict()}), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    asyncio.run(_serve(build(args), args.control))


if __name__ == "__main__":
    main()
