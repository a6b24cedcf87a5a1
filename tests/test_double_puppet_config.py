"""Double puppeting's settings and `msnbridge -g --double-puppet-registration`: the second
registration (its own as_token, every user of the homeserver's domain non-exclusively, no
rooms or aliases, no URL), its token written into bridge.double_puppet.secrets, the same
file on a second run; a secret that is not "as_token:…" is refused with the key and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from msnbridge.__main__ import main
from msnbridge.config import ConfigError, load_config
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


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"secrets": {"example.com": "s3cret"}}, "must be 'as_token:<token>'"),
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
