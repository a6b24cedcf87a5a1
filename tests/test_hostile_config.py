"""Configuration mistakes in the newest keys (msn.offline_send_timeout and the Matrix side's
keys) give a message naming the key and the fix, from `msnbridge -c` too (exit status 2,
no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msnbridge.__main__ import main
from msnbridge.config import ConfigError, load_config
from msnbridge.matrix.settings import MATRIX_OPTIONS
from tests.test_config import config_error, write_example


def test_example_has_offline_send_timeout(tmp_path: Path) -> None:
    config = load_config(str(write_example(tmp_path)))
    assert config["msn.offline_send_timeout"] == 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "msn.offline_send_timeout: expected an integer, got 'abc'"),
        ("0", "msn.offline_send_timeout: expected a positive number of seconds, got 0"),
        ("-5", "msn.offline_send_timeout: expected a positive number of seconds, got -5"),
        ("true", "msn.offline_send_timeout: expected an integer, got True"),
    ],
)
def test_offline_send_timeout_mistakes_name_the_key(
    tmp_path: Path, value: str, expected: str
) -> None:
    path = write_example(tmp_path, "offline_send_timeout: 60", f"offline_send_timeout: {value}")
    assert config_error(path).startswith(expected)


def test_missing_offline_send_timeout_uses_the_default(tmp_path: Path) -> None:
    path = write_example(tmp_path, "    offline_send_timeout: 60\n", "")
    assert load_config(str(path))["msn.offline_send_timeout"] == 60


@pytest.mark.parametrize(
    ("edit", "replace", "expected"),
    [
        ("presence_refresh_interval: 25", "presence_refresh_interval: 0",
         "bridge.presence_refresh_interval: expected a positive number of seconds"),
        ("ephemeral_check_after: 600", "ephemeral_check_after: soon",
         "bridge.ephemeral_check_after: expected an integer, got 'soon'"),
        ("message_status_events: true", "message_status_events: 3",
         "bridge.message_status_events: expected true or false, got 3"),
        ("public_address: ''", "public_address: matrix.example.com",
         "homeserver.public_address: expected an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_matrix_side_key_mistakes_name_the_key(
    tmp_path: Path, edit: str, replace: str, expected: str
) -> None:
    config = load_config(str(write_example(tmp_path, edit, replace)))
    with pytest.raises(ConfigError) as info:
        config.check(MATRIX_OPTIONS)  # what MatrixSide does at start-up
    assert str(info.value).startswith(expected)


def test_cli_reports_a_mistake_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_example(tmp_path, "offline_send_timeout: 60", "offline_send_timeout: never")
    assert main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msnbridge: msn.offline_send_timeout: expected an integer")
    assert "Fix: set msn.offline_send_timeout" in err and "Traceback" not in err
