"""``python -m puppets``: a command-line MSNP client for people who run revival servers.

    python -m puppets --server 127.0.0.1:1863 --passport alice@example.com \\
        --password-env MSN_PASSWORD info
    ... send bob@example.com "hello"      # prints the delivery result
    ... listen                            # prints every event as a JSON line

MSNP2-18: MSNP13+ also needs the SOAP services (--services-url for a revival server that
serves them all on one host). Sending to an offline contact on MSNP13+ stores an offline
message and prints the status SENT_AS_OIM.

Exit status: 0 ok, 2 usage, 3 message not delivered, 4 login refused, 5 network or timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import json
import os
import sys
from pathlib import Path
from typing import Any

from .client import Client
from .config import HIGHEST_VERSION, LOWEST_VERSION, ClientConfig
from .errors import AuthenticationError, MSNPError, PuppetError, SignedOutElsewhere

EXIT_UNDELIVERED = 3
EXIT_REFUSED = 4
EXIT_NETWORK = 5


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, enum.Flag) else value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ("switchboard", "conversation")
        }
    if isinstance(value, set | frozenset | list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def event_to_json(event: object) -> str:
    data = _jsonable(event)
    if not isinstance(data, dict):
        data = {"value": data}
    return json.dumps({"event": type(event).__name__, **data}, ensure_ascii=False)


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, 1863
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise argparse.ArgumentTypeError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    value = os.environ.get(args.password_env)
    if value is None:
        raise SystemExit(
            f"error: no password: set the environment variable {args.password_env} "
            "or pass --password-file"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m puppets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server",
        type=_address,
        default=("messenger.hotmail.com", 1863),
        help="dispatch server host:port (default messenger.hotmail.com:1863)",
    )
    p.add_argument("--passport", required=True, help="the account's e-mail address")
    p.add_argument(
        "--password-env",
        default="MSN_PASSWORD",
        help="environment variable holding the password (default MSN_PASSWORD)",
    )
    p.add_argument("--password-file", help="file holding the password (first line)")
    p.add_argument("--nexus", help="Passport Nexus URL (MSNP8+)")
    p.add_argument("--login-url", help="Passport login URL, skipping the Nexus")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--min-version", type=int, default=LOWEST_VERSION)
    p.add_argument("--max-version", type=int, default=HIGHEST_VERSION)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument(
        "--services-url",
        help="MSNP13+: base URL of the SOAP services (standard paths below it)",
    )
    p.add_argument("--rst-url", help="MSNP13+: Passport RST URL (overrides --services-url)")
    p.add_argument("--abch-url", help="MSNP13+: address book service URL")
    p.add_argument("--sharing-url", help="MSNP13+: sharing (membership) service URL")
    p.add_argument("--oim-url", help="MSNP13+: offline message (StoreMessage) URL")
    p.add_argument("--rsi-url", help="MSNP13+: offline message retrieval (RSI) URL")
    p.add_argument(
        "--machine-guid", help="MSNP16+: this endpoint's machine GUID ({...}); default: new"
    )
    p.add_argument(
        "--endpoint-name", default="msnbridge", help="MSNP18: endpoint name (default msnbridge)"
    )
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="log in, print version, contact list and presence as JSON")
    send = sub.add_parser("send", help="send a message and print its delivery result")
    send.add_argument("to", help="the contact's passport")
    send.add_argument("text")
    listen = sub.add_parser("listen", help="print incoming events as JSON lines")
    listen.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    return p


async def _run(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    if args.nexus:
        kwargs["nexus_url"] = args.nexus
    for name in ("services_url", "rst_url", "abch_url", "sharing_url", "oim_url", "rsi_url"):
        if getattr(args, name):
            kwargs[name] = getattr(args, name)
    if args.machine_guid:
        kwargs["machine_guid"] = args.machine_guid
    config = ClientConfig(
        passport=args.passport,
        password=_password(args),
        dispatch_host=args.server[0],
        dispatch_port=args.server[1],
        login_url=args.login_url,
        verify_tls=not args.insecure,
        min_version=args.min_version,
        max_version=args.max_version,
        timeout=args.timeout,
        change_spacing=0.0,
        reconnect=args.action == "listen",
        endpoint_name=args.endpoint_name,
        **kwargs,
    )
    client = Client(config)
    printing = args.action == "listen"
    if printing:
        client.add_listener(lambda ev: print(event_to_json(ev), flush=True))
    await client.start()
    try:
        try:
            await client.wait_online(timeout=args.timeout * 2)
        except TimeoutError:
            raise client.last_error or TimeoutError("no login within the timeout") from None
        if args.action == "info":
            # Let the ILN burst that follows CHG arrive before printing presence.
            await asyncio.sleep(min(1.0, args.timeout))
            out = {
                "passport": config.passport,
                "protocol": client.protocol,
                **client.contacts.to_json(),
            }
            if (client.protocol or 0) >= 16:
                out["machine_guid"] = client.machine_guid
                out["other_endpoints"] = client.own_endpoints
            print(json.dumps(out, ensure_ascii=False, indent=2))
            return 0
        if args.action == "send":
            result = await client.conversation([args.to]).send_text(args.text)
            print(
                json.dumps({"to": args.to, "status": result.status.name, "reason": result.reason})
            )
            return 0 if result.ok else EXIT_UNDELIVERED
        try:
            async with asyncio.timeout(args.duration):
                await asyncio.Event().wait()
        except TimeoutError:
            pass
        return 0
    finally:
        await client.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not LOWEST_VERSION <= args.min_version <= args.max_version <= HIGHEST_VERSION:
        print(
            f"error: versions must satisfy {LOWEST_VERSION} <= min <= max <= {HIGHEST_VERSION}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0
    except ValueError as e:  # a setting the configuration refuses (passport, GUID...)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (AuthenticationError, SignedOutElsewhere) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except MSNPError as e:
        print(f"error: the server refused: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except (PuppetError, OSError, TimeoutError) as e:
        msg = str(e) or "timed out"
        print(f"error: {type(e).__name__}: {msg}", file=sys.stderr)
        return EXIT_NETWORK


if __name__ == "__main__":
    sys.exit(main())
