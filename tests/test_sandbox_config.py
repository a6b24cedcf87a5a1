"""The sandbox's bridge.yaml across starts (no service started: only the file and the real
`msnbridge -g` it runs): the first start writes it whole; a later start keeps the user's
edits and comments, fills in missing keys and moves only the addresses and ports; the
printed IRC hint follows the permissions the file gives IRC users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from msnbridge.sandbox.bridge import MARKER, BridgeProcess
from msnbridge.sandbox.ports import Ports
from msnbridge.sandbox.stack import Options, Stack


def prepare(workdir: Path, ports: Ports, irc: bool = True) -> BridgeProcess:
    bridge = BridgeProcess(
        workdir, ports, homeserver=f"http://127.0.0.1:{ports.synapse}", domain="localhost"
    )
    bridge.prepare(
        msn_host="127.0.0.1",
        msn_port=ports.msn,
        nexus_url=f"http://127.0.0.1:{ports.msn_http}/rdr/pprdr.asp",
        admin="@demo:localhost",
        irc_port=ports.irc if irc else None,
    )
    return bridge


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_later_starts_keep_edits_fill_missing_keys_and_move_the_ports(tmp_path: Path) -> None:
    first = prepare(tmp_path, Ports())
    text = first.config_path.read_text()
    assert text.startswith("# Written by the msnbridge sandbox")
    data = load(first.config_path)
    secrets = (data["appservice"]["as_token"], data["bridge"]["secret_key"])
    assert data["bridge"]["permissions"]["irc:*"] == "user"

    # The user's edits: a value changed, a key and a comment added, a permission
    # removed, a key deleted.
    edits = (
        ("format: <{displayname}> {message}", "format: '[{displayname}] {message}'"),
        ("    relay:\n", "    # my own note\n    presence_refresh_interval: 123\n    relay:\n"),
        ("        irc:*: user\n", ""),
        ("    min_version: 2\n", ""),
    )
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    first.config_path.write_text(text)

    moved = Ports(synapse=18008, appservice=39390, metrics=18000, irc=16667, msn=11863)
    second = prepare(tmp_path, moved)
    text = second.config_path.read_text()
    data = load(second.config_path)
    assert data["bridge"]["relay"]["format"] == "[{displayname}] {message}"
    assert data["bridge"]["presence_refresh_interval"] == 123
    assert "# my own note" in text
    assert "irc:*" not in data["bridge"]["permissions"]  # a removed entry stays removed
    assert data["msn"]["min_version"] == 2  # a missing key is filled in
    assert (data["appservice"]["as_token"], data["bridge"]["secret_key"]) == secrets
    assert data["homeserver"]["address"] == "http://127.0.0.1:18008"
    assert data["appservice"]["port"] == 39390
    assert data["appservice"]["address"] == "http://127.0.0.1:39390"
    assert data["msn"]["dispatch_port"] == 11863
    assert data["msn"]["nexus_url"] == "http://127.0.0.1:11866/rdr/pprdr.asp"
    assert data["msn"]["services_url"] == "http://127.0.0.1:11866"  # MSNP13+ SOAP services
    assert data["irc"]["server"]["port"] == 16667
    assert data["metrics"]["port"] == 18000
    assert "http://127.0.0.1:39390" in (tmp_path / "registration.yaml").read_text()
    assert not second.irc_login_allowed()


def test_a_bridge_yaml_of_an_older_sandbox_is_rewritten_once(tmp_path: Path) -> None:
    first = prepare(tmp_path, Ports())
    token = load(first.config_path)["appservice"]["as_token"]
    (tmp_path / MARKER).unlink()  # as an older sandbox left it: its own defaults, no marker
    text = first.config_path.read_text().replace("        irc:*: user\n", "")
    first.config_path.write_text(text)
    second = prepare(tmp_path, Ports())
    data = load(second.config_path)
    assert data["bridge"]["permissions"]["irc:*"] == "user"
    assert data["appservice"]["as_token"] == token
    assert (tmp_path / MARKER).exists()


def test_the_irc_hint_follows_the_permissions(tmp_path: Path) -> None:
    stack = Stack(Options(tmp_path, Ports(), auto_login="bob@example.com"))
    stack.msn.prepare()
    bridge = prepare(stack.bridge.workdir, Ports())
    hint = stack._irc_hint()
    carol = next(a for a in stack.msn.accounts if a.passport == "carol@example.com")
    # Neither the default nor the chosen auto-login account: two sessions of one account
    # sign each other out.
    assert hint["login"] == f"/msg MSNBot login carol@example.com {carol.password}"
    assert hint["contact_list_channel"] == "#msn-carol"

    text = bridge.config_path.read_text().replace("        irc:*: user\n", "")
    bridge.config_path.write_text(
        text.replace("'*': relay", "'*': relay\n        irc:nick:x: user")
    )
    hint = stack._irc_hint()
    assert hint["login"] is None
    assert "relay rights only" in hint["note"] and "'irc:*': user" in hint["note"]
