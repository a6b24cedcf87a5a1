"""Double puppeting's settings and `msnbridge -g --double-puppet-registration`: the second
registration (its own as_token, every user of the homeserver's domain non-exclusively, no
rooms or aliases, no URL), its token written into bridge.double_puppet.secrets, the same
file on a second run; a secret that is not "as_token:…" is refused with the key and fix;
and the inbound handler does not send the bridge's own double-puppeted events to MSN
(the whole-bridge test cannot force the race where the echo comes back before the
message map holds the event)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mautrix.types import Event
from ruamel.yaml import YAML

from msnbridge.__main__ import main
from msnbridge.config import ConfigError, load_config
from msnbridge.db.portal import Portal
from msnbridge.matrix.inbound import MatrixInbound
from msnbridge.matrix.settings import MATRIX_OPTIONS

EXAMPLE = Path(__file__).resolve().parent.parent / "bridge.yaml.example"


def test_generate_writes_the_double_puppet_registration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "bridge.yaml"
    config_path.write_text(EXAMPLE.read_text())
    registration, double = tmp_path / "registration.yaml", tmp_path / "doublepuppet.yaml"
    args = ["-g", "-c", str(config_path), "-r", str(registration)]
    assert main([*args, "--double-puppet-registration", str(double)]) == 0
    assert "doublepuppet.yaml" in capsys.readouterr().out
    reg = YAML(typ="safe").load(double.read_text())
    main_reg = YAML(typ="safe").load(registration.read_text())
    config = load_config(str(config_path))
    config.check(MATRIX_OPTIONS)
    domain = config["homeserver.domain"]
    assert config["bridge.double_puppet.secrets"][domain] == f"as_token:{reg['as_token']}"
    assert reg["as_token"] not in (main_reg["as_token"], main_reg["hs_token"])
    assert reg["id"] != main_reg["id"] and reg["url"] is None
    assert reg["namespaces"]["rooms"] == [] and reg["namespaces"]["aliases"] == []
    (users,) = reg["namespaces"]["users"]
    assert users["exclusive"] is False
    assert re.fullmatch(users["regex"], f"@alice:{domain}")
    assert not re.fullmatch(users["regex"], "@alice:other.example")
    assert "# Who may use the bridge" in config_path.read_text()  # comments survive
    # Again: the same token and the same file, so the homeserver's copy stays valid.
    text = double.read_text()
    assert main([*args, "--double-puppet-registration", str(double)]) == 0
    assert double.read_text() == text


def test_double_puppet_registration_needs_generate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--double-puppet-registration", "doublepuppet.yaml"])
    assert "goes with -g" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"secrets": {"example.com": ""}}, "or a login shared secret"),
        ({"secrets": {"example.com": 42}}, "or a login shared secret"),
        ({"secrets": {"example.com": "as_token:"}}, "empty as_token"),
        ({"servers": {"other.example": "matrix.other.example"}}, "http:// or https://"),
    ],
)
def test_bad_double_puppet_settings_are_refused(
    tmp_path: Path, section: dict, expected: str
) -> None:
    text = EXAMPLE.read_text()
    for key in ("as_token", "hs_token", "secret_key"):
        text = text.replace(f"{key}: generate", f"{key}: X{key}")
    data = YAML(typ="safe").load(text)
    data["bridge"]["double_puppet"] = section
    path = tmp_path / "bridge.yaml"
    with path.open("w") as stream:
        YAML(typ="safe").dump(data, stream)
    config = load_config(str(path))
    with pytest.raises(ConfigError) as info:
        config.check(MATRIX_OPTIONS)
    assert "bridge.double_puppet." in str(info.value) and expected in str(info.value)


class _Router:
    """Records what the inbound handler would send to MSN (a unit test of one piece)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.sent: list[str] = []
        self.portals = SimpleNamespace(by_room=self._by_room, relays=lambda p: False)

    async def _by_room(self, room_id: str) -> Portal | None:
        return self.portal if room_id == self.portal.room_id else None

    async def send(self, portal: Portal, side: str, event_id: str, *args: Any, **kw: Any) -> None:
        self.sent.append(event_id)


@pytest.mark.parametrize(
    ("sender", "marked", "sent"),
    [
        ("@owner:example.com", True, False),  # our double-puppeted echo
        ("@owner:example.com", False, True),  # the owner writing in Matrix
        ("@other:example.com", True, False),  # someone else (not relayed: relay off)
    ],
)
async def test_double_puppeted_echo_is_not_sent_to_msn(
    sender: str, marked: bool, sent: bool
) -> None:
    """The transaction that brings back what the bridge sent as the owner (marked with
    fi.mau.double_puppet_source) is not a new message for MSN; the owner's own are."""
    portal = Portal("@owner:example.com", "bob@example.com", room_id="!room:example.com")
    router = _Router(portal)
    side = SimpleNamespace(
        router=router,
        portal_side=SimpleNamespace(creating=set()),
        is_bridge_user=lambda user_id: False,
        level_for=lambda user_id: None,
        media_base="https://example.com",
        bot=None,
        outgoing_files=SimpleNamespace(wants=lambda portal, content: False),  # text only
    )
    inbound = MatrixInbound(side)  # type: ignore[arg-type]
    content: dict[str, Any] = {"msgtype": "m.text", "body": "hello"}
    if marked:
        content["fi.mau.double_puppet_source"] = "msn"
    event = Event.deserialize(
        {
            "type": "m.room.message",
            "room_id": portal.room_id,
            "sender": sender,
            "event_id": "$ev",
            "origin_server_ts": 1,
            "content": content,
        }
    )
    inbound._tell_not_relayed = _nothing  # type: ignore[method-assign]
    assert await inbound.handle(event, 0.0)
    assert router.sent == (["$ev"] if sent else [])


async def _nothing(*args: Any) -> None:
    return None
