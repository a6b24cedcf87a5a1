"""Puppet events, contacts, errors and session snapshots ↔ JSON-safe values.

Everything a pool publishes about a session goes through here, so that the core can
rebuild the same typed objects the puppets library hands out in-process (the core's code
paths see a ``MessageReceived``, a ``Contact``, a ``MSNPError`` as they always did).

- `encode_event` / `decode_event`: any event of ``puppets/event/*.py`` to
  ``{"type": class name, "fields": {...}}`` and back. The live objects some events carry
  do not travel: ``switchboard`` and ``conversation`` (the executor sends ids instead and
  the core puts its own proxies back through ``decode_event(..., switchboard=,
  conversation=)``), and a transfer's ``transfer`` (the executor sends the transfer's
  id beside the event and the core puts its own stand-in back with ``transfer=``; see
  ``pool_transfers`` and ``remote_transfers``). A display picture
  (``DisplayPictureReceived``) travels with its data, base64, up to ``MAX_OBJECT_BYTES``:
  a larger one is a CodecError.
- `encode_value` / `decode_value`: the values inside events, tagged where JSON has no
  type of its own (bytes, enums, tuples, dicts, MSNObject, TextFormat, errors…).
- `encode_contact` / `decode_contact`, `encode_error` / `decode_error`,
  `encode_result` / `decode_result` (a `DeliveryResult`).

Encoded values are plain dicts, lists, str, int, float, bool and None: ``json.dumps``
takes them as they are.
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
from enum import Enum
from typing import Any

from puppets import errors as puppet_errors
from puppets.contacts import Contact, Group, Lists
from puppets.event import contact as contact_events
from puppets.event import conversation as conversation_events
from puppets.event import mailbox as mailbox_events
from puppets.event import offline as offline_events
from puppets.event import session as session_events
from puppets.event import transfer as transfer_events
from puppets.event.conversation import DeliveryResult, DeliveryStatus
from puppets.event.session import SessionState
from puppets.message import Datacast, Invitation, TextMessage
from puppets.msnobject import MSNObject
from puppets.textformat import TextFormat

__all__ = [
    "EVENT_TYPES",
    "MAX_OBJECT_BYTES",
    "NOT_CARRIED",
    "CodecError",
    "RemoteError",
    "decode_contact",
    "decode_error",
    "decode_event",
    "decode_result",
    "decode_value",
    "encode_contact",
    "encode_error",
    "encode_event",
    "encode_result",
    "encode_value",
]


class CodecError(ValueError):
    """An encoded value or event this codec cannot read (a newer pool, damaged data)."""


class RemoteError(puppet_errors.PuppetError):
    """An error raised in a pool whose type has no counterpart here; its text is kept."""


def _dataclasses_of(*modules: object) -> dict[str, type]:
    found: dict[str, type] = {}
    for module in modules:
        for name in getattr(module, "__all__", None) or vars(module):
            cls = getattr(module, name, None)
            if isinstance(cls, type) and dataclasses.is_dataclass(cls):
                if cls.__module__ == getattr(module, "__name__", None):
                    found[cls.__name__] = cls
    return found


# Every event a puppets.Client emits, by class name.
EVENT_TYPES: dict[str, type] = _dataclasses_of(
    contact_events,
    conversation_events,
    mailbox_events,
    offline_events,
    session_events,
    transfer_events,
)
EVENT_TYPES.pop("DeliveryResult", None)  # a result, not an event
EVENT_TYPES.pop("ConversationEvent", None)  # the base class only

# Fields holding live objects: never encoded (see the module docstring).
_LIVE_FIELDS = frozenset({"switchboard", "conversation", "transfer"})
# Events whose handling needs a live transfer object: they travel only with a transfer
# id beside them (pool_transfers); a TransferProgress never does.
NOT_CARRIED = frozenset({"FileOffered", "TransferProgress", "TransferFinished"})

# Events carrying an MSN object's data (a display picture, an emoticon): over this many
# bytes they are refused (a picture is a few KiB; the bound keeps one event's envelope
# on the link small).
MAX_OBJECT_BYTES = 512 * 1024
_OBJECT_EVENTS = frozenset({"DisplayPictureReceived", "EmoticonReceived"})

# Value classes that travel inside events, rebuilt by their fields.
_VALUE_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (TextMessage, TextFormat, Datacast, Invitation, DeliveryResult)
}
_ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (SessionState, DeliveryStatus, Lists)}


# --- values ---


def encode_value(value: Any) -> Any:
    """A JSON-safe form of ``value`` (see `decode_value`); raises CodecError if unknown."""
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, Enum):  # before int: Lists is an IntFlag
        return {"$t": type(value).__name__, "v": value.value}
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        return {"$t": "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, tuple):
        return {"$t": "tuple", "v": [encode_value(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"$t": "set", "v": sorted(encode_value(v) for v in value)}
    if isinstance(value, dict):
        return {"$t": "dict", "v": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, MSNObject):
        return {"$t": "MSNObject", "v": encode_value(_fields(value))}
    if isinstance(value, BaseException):
        return {"$t": "error", "v": encode_error(value)}
    name = type(value).__name__
    if _VALUE_TYPES.get(name) is type(value):
        return {"$t": name, "v": encode_value(_fields(value))}
    raise CodecError(f"cannot encode a {name}")


def decode_value(data: Any) -> Any:
    if data is None or isinstance(data, bool | str | int | float):
        return data
    if isinstance(data, list):
        return [decode_value(v) for v in data]
    if not isinstance(data, dict) or "$t" not in data:
        raise CodecError(f"not an encoded value: {str(data)[:60]!r}")
    tag, raw = data["$t"], data.get("v")
    try:
        if tag == "bytes":
            return base64.b64decode(raw, validate=True)
        if tag == "tuple":
            return tuple(decode_value(v) for v in raw)
        if tag == "set":
            return frozenset(decode_value(v) for v in raw)
        if tag == "dict":
            return {decode_value(k): decode_value(v) for k, v in raw}
        if tag == "error":
            return decode_error(raw)
        if tag == "MSNObject":
            return MSNObject(**decode_value(raw))
        if tag in _ENUMS:
            return _ENUMS[tag](raw)
        if tag in _VALUE_TYPES:
            return _VALUE_TYPES[tag](**decode_value(raw))
    except (TypeError, ValueError) as e:
        raise CodecError(f"damaged {tag}: {e}") from None
    raise CodecError(f"unknown value type {tag!r}")


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# --- events ---


def encode_event(event: object) -> dict[str, Any]:
    """``{"type": "MessageReceived", "fields": {...}}``, live objects left out."""
    name = type(event).__name__
    if EVENT_TYPES.get(name) is not type(event):
        raise CodecError(f"not a puppet event: {name}")
    if name in _OBJECT_EVENTS:
        who = getattr(event, "passport", None) or getattr(event, "sender", "?")
        _check_object_size(name, who, len(event.data))  # type: ignore[attr-defined]
    fields = {
        f.name: encode_value(getattr(event, f.name))
        for f in dataclasses.fields(event)  # type: ignore[arg-type]
        if f.name not in _LIVE_FIELDS
    }
    return {"type": name, "fields": fields}


def decode_event(data: dict[str, Any], **live: Any) -> object:
    """The event again; ``live`` gives the live fields (``switchboard=``,
    ``conversation=``); a live field not given is None."""
    name = data.get("type")
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CodecError(f"unknown event type {name!r}")
    raw = data.get("fields")
    if not isinstance(raw, dict):
        raise CodecError(f"{name} without fields")
    if name in _OBJECT_EVENTS:
        data_field = raw.get("data")
        encoded = data_field.get("v") if isinstance(data_field, dict) else None
        if isinstance(encoded, str):  # base64: 4 characters for 3 bytes, "=" padding
            who = raw.get("passport") or raw.get("sender") or "?"
            _check_object_size(name, who, len(encoded) * 3 // 4 - encoded[-2:].count("="))
    kwargs = {k: decode_value(v) for k, v in raw.items()}
    for f in dataclasses.fields(cls):
        if f.name in _LIVE_FIELDS:
            kwargs[f.name] = live.get(f.name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise CodecError(f"damaged {name}: {e}") from None


def _check_object_size(name: str, who: object, size: int) -> None:
    if size > MAX_OBJECT_BYTES:
        raise CodecError(
            f"{name} from {who} is {size} bytes, over the {MAX_OBJECT_BYTES} bytes "
            "carried through the bridge's connection pools: not carried"
        )


# --- delivery results ---


def encode_result(result: DeliveryResult) -> dict[str, Any]:
    return {"status": result.status.value, "reason": result.reason}


def decode_result(data: dict[str, Any]) -> DeliveryResult:
    try:
        return DeliveryResult(DeliveryStatus(data["status"]), str(data.get("reason", "")))
    except (KeyError, ValueError, TypeError) as e:
        raise CodecError(f"damaged delivery result: {e}") from None


# --- contacts and groups ---


def encode_contact(contact: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {
        "passport": contact.passport,
        "nick": contact.nick,
        "lists": int(contact.lists),
        "groups": sorted(contact.groups),
        "status": contact.status,
    }
    # Defaults are left out: thousands of sessions x dozens of contacts in a snapshot.
    optional = (
        ("guid", None), ("psm", ""), ("caps", 0), ("ext_caps", 0), ("msnobject", None),
        ("network", 1),
    )  # fmt: skip
    for name, default in optional:
        if (value := getattr(contact, name)) != default:
            out[name] = value
    if contact.phones:
        out["phones"] = dict(contact.phones)
    return out


def decode_contact(data: dict[str, Any]) -> Contact:
    try:
        return Contact(
            passport=str(data["passport"]).lower(),
            nick=str(data.get("nick", "")),
            lists=Lists(int(data.get("lists", 0))),
            groups=frozenset(str(g) for g in data.get("groups", ())),
            guid=data.get("guid"),
            status=str(data.get("status", "FLN")),
            psm=str(data.get("psm", "")),
            caps=int(data.get("caps", 0)),
            ext_caps=int(data.get("ext_caps", 0)),
            msnobject=data.get("msnobject"),
            phones=dict(data["phones"]) if data.get("phones") else None,
            network=int(data.get("network", 1)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CodecError(f"damaged contact: {e}") from None


def encode_group(group: Group) -> dict[str, str]:
    return {"id": group.id, "name": group.name}


def decode_group(data: dict[str, Any]) -> Group:
    try:
        return Group(str(data["id"]), str(data["name"]))
    except (KeyError, TypeError) as e:
        raise CodecError(f"damaged group: {e}") from None


# --- errors ---

_PUPPET_ERRORS: dict[str, type[BaseException]] = {
    name: cls
    for name, cls in vars(puppet_errors).items()
    if isinstance(cls, type) and issubclass(cls, puppet_errors.PuppetError)
}


def encode_error(error: BaseException | None) -> dict[str, Any] | None:
    """Type name and text (and an MSNP error's code and command); never a traceback."""
    if error is None:
        return None
    out: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, puppet_errors.MSNPError):
        out["code"], out["command"] = error.code, error.command
    return out


def decode_error(data: dict[str, Any] | None) -> BaseException | None:
    """The same exception type where it is a puppets error or a built-in one (the core
    words errors by their type, e.g. ``describe_login_error``), else a `RemoteError`
    with the same text."""
    if data is None:
        return None
    name, message = str(data.get("type", "")), str(data.get("message", ""))
    if name == "MSNPError":
        try:
            return puppet_errors.MSNPError(int(data["code"]), str(data.get("command", "")))
        except (KeyError, TypeError, ValueError):
            return RemoteError(message)
    cls = _PUPPET_ERRORS.get(name)
    if cls is None:
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type) and issubclass(builtin, Exception):
            cls = builtin
    if cls is None:
        return RemoteError(message)
    try:
        return cls(message) if message else cls()
    except TypeError:
        return RemoteError(message)
