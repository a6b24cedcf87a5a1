"""``python -m puppets``: a command-line MSNP client for people who run revival servers.

    python -m puppets --server 127.0.0.1:1863 --passport alice@example.com \\
        --password-env MSN_PASSWORD info
    ... send bob@example.com "hello"      # prints the delivery result
    ... listen                            # prints every event as a JSON line
    ... send-file bob@example.com photo.jpg   # offers a file (MSNSLP through the switchboard)
    ... listen --accept-files DIR --save-pictures DIR
    ... --display-picture me.png listen   # the picture this session shows

MSNP2-18: MSNP13+ also needs the SOAP services (--services-url for a revival server that
serves them all on one host). Sending to an offline contact on MSNP13+ stores an offline
message and prints the status SENT_AS_OIM.

Exit status: 0 ok, 2 usage, 3 message or file not delivered (declined, failed), 4 login
refused, 5 network or timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import enum
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from .client import Client
from .config import HIGHEST_VERSION, LOWEST_VERSION, ClientConfig
from .errors import AuthenticationError, MSNPError, PuppetError, SignedOutElsewhere
from .event.transfer import DisplayPictureReceived, FileOffered, TransferFinished

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
            if f.name not in ("switchboard", "conversation", "transfer")
        }
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}  # pictures, previews: their size, not their content
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
    p.add_argument("--display-picture", metavar="PATH", help="the picture this session shows")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="log in, print version, contact list and presence as JSON")
    send = sub.add_parser("send", help="send a message and print its delivery result")
    send.add_argument("to", help="the contact's passport")
    send.add_argument("text")
    send_file = sub.add_parser(
        "send-file", help="offer a file; exit 0 once the contact has every byte"
    )
    send_file.add_argument("to", help="the contact's passport")
    send_file.add_argument("path")
    send_file.add_argument(
        "--answer-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the contact to accept (default 120)",
    )
    listen = sub.add_parser("listen", help="print incoming events as JSON lines")
    listen.add_argument(
        "--accept-files",
        metavar="DIR",
        help="accept every offered file into DIR; print name, size and sha256 as JSON",
    )
    listen.add_argument(
        "--save-pictures", metavar="DIR", help="fetch contacts' display pictures into DIR"
    )
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
        if args.accept_files:
            _accept_files(client, Path(args.accept_files))
        if args.save_pictures:
            _save_pictures(client, Path(args.save_pictures))
    if args.picture_data:
        await client.set_display_picture(args.picture_data)
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
        if args.action == "send-file":
            return await _send_file(client, args)
        try:
            async with asyncio.timeout(args.duration):
                await asyncio.Event().wait()
        except TimeoutError:
            pass
        return 0
    finally:
        await client.stop()


async def _send_file(client: Client, args: argparse.Namespace) -> int:
    transfer = client.p2p.manager.send_file(
        args.to, Path(args.path), answer_timeout=args.answer_timeout
    )
    status = await transfer.wait()
    out = {
        "to": args.to,
        "name": transfer.name,
        "size": transfer.size,
        "status": status,
        "reason": transfer.reason,
    }
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if status == "completed" else EXIT_UNDELIVERED


def _free_name(directory: Path, name: str) -> Path:
    """``name`` in ``directory``, with " (n)" added before the suffix if it is taken."""
    candidate = directory / name
    stem, suffix = candidate.stem, candidate.suffix
    n = 1
    while candidate.exists():
        candidate = directory / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


def _accept_files(client: Client, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[int, Path] = {}

    def on_event(event: object) -> None:
        if isinstance(event, FileOffered):
            path = _free_name(directory, event.name)
            path.touch(exist_ok=False)  # reserve the name before the data comes
            paths[id(event.transfer)] = path
            event.transfer.accept(path)
        elif isinstance(event, TransferFinished) and event.incoming:
            path = paths.pop(id(event.transfer), None)
            if path is None or event.status != "completed":
                return
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while block := f.read(1 << 16):
                    digest.update(block)
            line = {
                "event": "FileReceived",
                "from": event.peer,
                "name": event.name,
                "size": event.size,
                "sha256": digest.hexdigest(),
                "path": str(path),
            }
            print(json.dumps(line, ensure_ascii=False), flush=True)

    client.add_listener(on_event)


def _save_pictures(client: Client, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    client.p2p.auto_fetch_pictures = True

    def on_event(event: object) -> None:
        if isinstance(event, DisplayPictureReceived):
            name = base64.b64decode(event.msnobject.sha1d).hex()
            path = directory / f"{event.passport}-{name}"
            path.write_bytes(event.data)
            line = {"event": "PictureSaved", "passport": event.passport, "path": str(path)}
            print(json.dumps(line, ensure_ascii=False), flush=True)

    client.add_listener(on_event)


def _read_inputs(args: argparse.Namespace) -> bytes | None:
    """Check the files named on the command line before logging in (usage errors)."""
    if args.action == "send-file" and not Path(args.path).is_file():
        raise OSError(f"{args.path} is not a readable file")
    if args.display_picture:
        return Path(args.display_picture).read_bytes()
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not LOWEST_VERSION <= args.min_version <= args.max_version <= HIGHEST_VERSION:
        print(
            f"error: versions must satisfy {LOWEST_VERSION} <= min <= max <= {HIGHEST_VERSION}",
            file=sys.stderr,
        )
        return 2
    try:
        args.picture_data = _read_inputs(args)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
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
