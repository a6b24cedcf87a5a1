"""Command line: `msnbridge -g` writes the registration, `msnbridge -c bridge.yaml` runs."""

from __future__ import annotations

import argparse
import logging
import logging.config
import secrets
import sys

from .config import GENERATE, ConfigError, load_config
from .db import DatabaseTooNew, MigrationError
from .errors import StartupError
from .secrets import SecretKeyError, generate_secret_key

log = logging.getLogger("msnbridge")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="msnbridge", description="A bridge between MSN Messenger and Matrix and IRC."
    )
    parser.add_argument("-c", "--config", default="bridge.yaml", help="config file (bridge.yaml)")
    parser.add_argument(
        "-g",
        "--generate-registration",
        action="store_true",
        help="generate tokens into the config and write the appservice registration, then exit",
    )
    parser.add_argument(
        "-r",
        "--registration",
        default="registration.yaml",
        help="where -g writes the registration (registration.yaml)",
    )
    return parser.parse_args(argv)


def generate(config_path: str, registration_path: str) -> None:
    """Fills in tokens and the secret key still set to "generate" (kept once generated, so
    running -g again rewrites the same registration), then writes the registration."""
    from .matrix.registration import write_registration

    config = load_config(config_path, allow_generate=True)
    changed = []
    for path, make in (
        ("appservice.as_token", lambda: secrets.token_urlsafe(48)),
        ("appservice.hs_token", lambda: secrets.token_urlsafe(48)),
        ("bridge.secret_key", generate_secret_key),
    ):
        if config[path] == GENERATE:
            config[path] = make()
            changed.append(path)
    if changed:
        config.save()
    write_registration(config, registration_path)
    generated = f" (generated {', '.join(changed)} into {config_path})" if changed else ""
    print(f"Wrote {registration_path}{generated}. Add it to app_service_config_files in Synapse.")


def run(config_path: str) -> None:
    from .bridge import Bridge

    config = load_config(config_path)
    logging.config.dictConfig(dict(config["logging"]))
    from .event_loop import run as run_on_loop

    run_on_loop(Bridge(config).run())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.generate_registration:
            generate(args.config, args.registration)
        else:
            run(args.config)
    except (ConfigError, DatabaseTooNew, MigrationError, SecretKeyError, StartupError) as e:
        # Mistakes the operator can fix: say what and how, without a traceback.
        print(f"msnbridge: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"msnbridge: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
