"""Command line: `msnbridge -g` writes the registration, `msnbridge -c bridge.yaml` runs."""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import secrets
import sys

from .config import GENERATE, ConfigError, load_config
from .db import DatabaseTooNew, MigrationError
from .errors import StartupError
from .private_files import DAEMON_UMASK, log_files, make_private
from .secrets import SecretKeyError, generate_secret_key

log = logging.getLogger("msnbridge")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="msnbridge", description="A bridge between MSN Messenger and Matrix and IRC."
    )
    parser.add_argument(
        "role",
        nargs="?",
        choices=("core", "pool"),
        default="core",
        help="core (the default): the bridge itself; pool: a connection pool holding MSN "
        "sessions for it (needs pools.redis_url; see docs/deployment.md)",
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
    parser.add_argument(
        "--double-puppet-registration",
        metavar="PATH",
        help="with -g: also write the double-puppet registration (its as_token goes into "
        "bridge.double_puppet.secrets for homeserver.domain)",
    )
    args = parser.parse_args(argv)
    if args.role == "pool" and args.generate_registration:
        parser.error("-g writes the registration: run it without 'pool'")
    if args.double_puppet_registration and not args.generate_registration:
        parser.error("--double-puppet-registration goes with -g (it writes a registration)")
    return args


def generate(
    config_path: str, registration_path: str, double_puppet_path: str | None = None
) -> None:
    """Fills in tokens and the secret key still set to "generate" (kept once generated, so
    running -g again rewrites the same registration), then writes the registration (and
    the double-puppet one when asked)."""
    from .matrix.double_puppet import AS_TOKEN_PREFIX
    from .matrix.registration import write_double_puppet_registration, write_registration

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
    written = [registration_path]
    if double_puppet_path:
        domain = config["homeserver.domain"]
        secrets_map = dict(config["bridge.double_puppet.secrets"] or {})
        secret = secrets_map.get(domain)
        if not isinstance(secret, str) or not secret.startswith(AS_TOKEN_PREFIX):
            secret = AS_TOKEN_PREFIX + secrets.token_urlsafe(48)
            secrets_map[domain] = secret
            config["bridge.double_puppet.secrets"] = secrets_map
            changed.append(f"bridge.double_puppet.secrets.{domain}")
        token = secret.removeprefix(AS_TOKEN_PREFIX)
        write_double_puppet_registration(domain, token, double_puppet_path)
        written.append(double_puppet_path)
    if changed:
        config.save()
    write_registration(config, registration_path)
    generated = f" (generated {', '.join(changed)} into {config_path})" if changed else ""
    files = " and ".join(written)
    print(f"Wrote {files}{generated}. Add {'them' if len(written) > 1 else 'it'} to "
          f"app_service_config_files in Synapse.")  # fmt: skip


def run(config_path: str, role: str = "core") -> None:
    from .bridge import Bridge

    config = load_config(config_path)
    if role == "pool" and not config["pools.redis_url"]:
        raise ConfigError(
            "pools.redis_url is empty: a connection pool talks to the bridge through Redis. "
            "Fix: set pools.redis_url (the same in every process), or run the bridge alone "
            "without 'pool'."
        )
    # Whatever the bridge creates (database, log, files of libraries) is its own only.
    os.umask(DAEMON_UMASK)
    logging_config = dict(config["logging"])
    for path in log_files(logging_config):
        make_private(path)  # the log names users and their contacts
    logging.config.dictConfig(logging_config)
    from .event_loop import run as run_on_loop

    if role == "pool":
        from .pools.pool import Pool

        run_on_loop(Pool(config).run())
    else:
        run_on_loop(Bridge(config).run())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.generate_registration:
            generate(args.config, args.registration, args.double_puppet_registration)
        else:
            run(args.config, args.role)
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
