"""bridge.yaml: the example, errors that name the key and the fix, and `msnbridge -g`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from msnbridge.__main__ import main
from msnbridge.config import ConfigError, load_config
from msnbridge.matrix.ids import GhostIds, escape_passport, unescape_passport
from msnbridge.permissions import PermissionLevel, Permissions, parse_permissions

EXAMPLE = Path(__file__).resolve().parent.parent / "bridge.yaml.example"


def write_example(tmp_path: Path, edit: str | None = None, replace: str = "") -> Path:
    """The example with generated values filled in and one line optionally edited."""
    text = EXAMPLE.read_text()
    text = text.replace("as_token: generate", "as_token: AS").replace(
        "hs_token: generate", "hs_token: HS"
    )
    text = text.replace("secret_key: generate", "secret_key: KEY")
    if edit is not None:
        assert edit in text, edit
        text = text.replace(edit, replace)
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return str(info.value)


def test_example_config_loads_with_typed_values(tmp_path: Path) -> None:
    config = load_config(str(write_example(tmp_path)))
    assert config["msn.dispatch_port"] == 1863
    assert config["msn.min_version"] == 2 and config["msn.max_version"] == 18
    assert config["appservice.ephemeral_events"] is True
    assert config["appservice.username_template"] == "msn_{passport}"
    assert config["appservice.displayname_template"] == "{nick} (MSN)"
    assert config["bridge.relay.format"] == "<{displayname}> {message}"
    assert config["database"] == "sqlite:msnbridge.db"
    assert config["irc.enabled"] is False
    assert config["logging"]["version"] == 1


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    message = config_error(write_example(tmp_path, "dispatch_port: 1863", "dispatch_port: abc"))
    assert message.startswith("msn.dispatch_port: expected an integer, got 'abc'")
    assert "Fix: set msn.dispatch_port" in message


def test_yaml_boolean_is_not_a_port(tmp_path: Path) -> None:
    message = config_error(write_example(tmp_path, "port: 29390", "port: true"))
    assert message.startswith("appservice.port: expected an integer, got True")


def test_missing_required_key(tmp_path: Path) -> None:
    message = config_error(write_example(tmp_path, "    domain: example.com\n", ""))
    assert message.startswith("homeserver.domain: missing.")
    assert "Fix: set homeserver.domain" in message


def test_missing_optional_section_uses_defaults(tmp_path: Path) -> None:
    text = write_example(tmp_path).read_text()
    start, end = text.index("# The MSN Messenger service"), text.index("# The IRC side")
    path = tmp_path / "bridge.yaml"
    path.write_text(text[:start] + text[end:])
    config = load_config(str(path))
    assert config["msn.dispatch_port"] == 1863
    assert config["msn.verify_tls"] is True


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    text = write_example(tmp_path).read_text()
    start, end = text.index("msn:\n"), text.index("# The IRC side")
    path = tmp_path / "bridge.yaml"
    path.write_text(text[:start] + "msn: 5\n\n" + text[end:])
    assert config_error(path).startswith("msn: expected a mapping")


def test_value_out_of_range(tmp_path: Path) -> None:
    message = config_error(write_example(tmp_path, "max_version: 18", "max_version: 19"))
    assert message.startswith("msn.max_version: expected an MSNP version from 2 to 18, got 19")
    message = config_error(write_example(tmp_path, "port: 8000", "port: 70000"))
    assert message.startswith("metrics.port: expected a port number from 1 to 65535, got 70000")


def test_min_version_above_max(tmp_path: Path) -> None:
    path = write_example(tmp_path, "min_version: 2", "min_version: 9")
    path.write_text(path.read_text().replace("max_version: 18", "max_version: 5"))
    assert config_error(path).startswith("msn.min_version: 9 is above msn.max_version 5")


def test_bad_permission_level(tmp_path: Path) -> None:
    message = config_error(write_example(tmp_path, "example.com: user", "example.com: boss"))
    assert message.startswith("bridge.permissions: entry 'example.com' has level 'boss'")


def test_bad_urls_and_templates(tmp_path: Path) -> None:
    message = config_error(
        write_example(tmp_path, "address: http://localhost:8008", "address: localhost")
    )
    assert message.startswith("homeserver.address: expected an http:// or https:// URL")
    message = config_error(
        write_example(tmp_path, "username_template: msn_{passport}", "username_template: msn_")
    )
    assert message.startswith("appservice.username_template: must contain {passport}")
    message = config_error(
        write_example(tmp_path, "database: sqlite:msnbridge.db", "database: mysql://x")
    )
    assert message.startswith("database: expected sqlite:<path> or postgres://")


def test_ungenerated_tokens_refuse_to_run(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(EXAMPLE.read_text())
    message = config_error(path)
    assert message.startswith("appservice.as_token: not generated yet")
    assert "msnbridge -g" in message


def test_unreadable_files(tmp_path: Path) -> None:
    assert "no such file" in config_error(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("homeserver: [unclosed\n")
    assert "not valid YAML" in config_error(broken)


def test_generate_registration_keeps_comments_and_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "bridge.yaml"
    config_path.write_text(EXAMPLE.read_text())
    registration = tmp_path / "registration.yaml"
    assert main(["-g", "-c", str(config_path), "-r", str(registration)]) == 0
    text = config_path.read_text()
    assert "# Who may use the bridge" in text  # comments survive the rewrite
    assert "generate" not in re.findall(r"(?:as_token|hs_token|secret_key): (\S+)", text)
    reg = YAML(typ="safe").load(registration.read_text())
    config = load_config(str(config_path))
    assert reg["as_token"] == config["appservice.as_token"]
    assert reg["hs_token"] == config["appservice.hs_token"]
    assert reg["as_token"] != reg["hs_token"]
    assert reg["sender_localpart"] == "msnbot"
    assert reg["receive_ephemeral"] is True
    assert reg["de.sorunome.msc2409.push_ephemeral"] is True
    users = reg["namespaces"]["users"]
    assert all(ns["exclusive"] for ns in users)
    assert re.fullmatch(users[0]["regex"], "@msn_alice=40example.com:example.com")
    assert not re.fullmatch(users[0]["regex"], "@alice:example.com")
    assert re.fullmatch(users[1]["regex"], "@msnbot:example.com")
    # Running -g again keeps the tokens, so the homeserver's copy stays valid.
    secret = config["bridge.secret_key"]
    assert main(["-g", "-c", str(config_path), "-r", str(registration)]) == 0
    again = YAML(typ="safe").load(registration.read_text())
    assert again["as_token"] == reg["as_token"] and again["hs_token"] == reg["hs_token"]
    assert load_config(str(config_path))["bridge.secret_key"] == secret
    assert "Wrote" in capsys.readouterr().out


def test_main_reports_config_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_example(tmp_path, "dispatch_port: 1863", "dispatch_port: abc")
    assert main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msnbridge: msn.dispatch_port: expected an integer, got 'abc'")
    assert "Traceback" not in err


def test_permissions_most_specific_entry_wins() -> None:
    perms = Permissions(
        {"*": "relay", "example.com": "user", "@boss:example.com": "admin", "@x:other.org": "user"}
    )
    assert perms.level_for("@boss:example.com") is PermissionLevel.ADMIN
    assert perms.level_for("@alice:example.com") is PermissionLevel.USER
    assert perms.level_for("@eve:elsewhere.net") is PermissionLevel.RELAY
    assert perms.level_for("@x:other.org") is PermissionLevel.USER
    strict = Permissions({"example.com": "user"})
    assert strict.level_for("@eve:elsewhere.net") is None
    assert strict.level_for("@eve:sub.example.com") is None


def test_permission_entries_are_checked() -> None:
    with pytest.raises(ValueError, match="neither"):
        parse_permissions({"not a server!": "user"})
    with pytest.raises(ValueError, match="expected relay, user or admin"):
        parse_permissions({"*": "root"})


def test_ghost_ids_round_trip() -> None:
    ids = GhostIds("msn_{passport}", "example.com")
    assert escape_passport("Alice_B@Example.com") == "alice__b=40example.com"
    assert ids.mxid("alice@example.com") == "@msn_alice=40example.com:example.com"
    for passport in ("alice@example.com", "a_b+c@x.org", "ünï@example.com"):
        assert ids.passport(ids.mxid(passport)) == passport
    assert ids.passport("@alice:example.com") is None
    assert ids.passport("@msn_alice=40example.com:other.org") is None
    assert unescape_passport("x=3d=40y") == "x=@y"
    assert re.fullmatch(ids.regex(), ids.mxid("bob@example.com"))
