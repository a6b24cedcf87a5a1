"""python -m msnbridge.sandbox: the local stack in one command (see scripts/sandbox.sh)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from .checks import CheckResult
from .demo import AutoLoginError
from .http import HTTPError
from .msn import DEMO_ACCOUNTS
from .ports import PortInUse, Ports
from .process import ServiceError
from .stack import Options, SandboxError, Stack, describe

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = Ports()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m msnbridge.sandbox",
        description="Start Synapse, an IRC server, the MSNP test server with demo accounts and "
        "the bridge on loopback; print how to use them; stop all on Ctrl-C.",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=REPO / "sandbox-data",
        help="state and logs, reused by the next start (default: sandbox-data/)",
    )
    p.add_argument("--synapse-port", type=int, default=DEFAULTS.synapse)
    p.add_argument("--appservice-port", type=int, default=DEFAULTS.appservice)
    p.add_argument("--metrics-port", type=int, default=DEFAULTS.metrics)
    p.add_argument("--irc-port", type=int, default=DEFAULTS.irc)
    p.add_argument(
        "--msn-port",
        type=int,
        default=DEFAULTS.msn,
        help="MSN dispatch port; the next three ports are also used",
    )
    p.add_argument("--no-irc", action="store_true", help="do not start ngIRCd")
    p.add_argument(
        "--auto-login",
        nargs="?",
        const=DEMO_ACCOUNTS[0][0],
        metavar="PASSPORT",
        help="log the demo Matrix user in to MSN (default account: %(const)s)",
    )
    p.add_argument(
        "--check",
        "--once",
        dest="check",
        action="store_true",
        help="start, verify every service answers, print the summary, stop",
    )
    return p.parse_args(argv)  # fmt: skip


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _report(results: list[CheckResult]) -> bool:
    ok = True
    for r in results:
        mark = "ok  " if r.ok else ("FAIL" if r.required else "warn")
        print(f"  [{mark}] {r.name}: {r.detail}")
        ok = ok and (r.ok or not r.required)
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ports = Ports(
        synapse=args.synapse_port,
        appservice=args.appservice_port,
        metrics=args.metrics_port,
        irc=args.irc_port,
        msn=args.msn_port,
    )
    stack = Stack(Options(args.data_dir, ports, irc=not args.no_irc, auto_login=args.auto_login))
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python then keeps
    # ignoring it.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    status = 0
    try:
        stack.start(say=lambda text: print(text, flush=True))
        print(describe(stack.summary("running")), flush=True)
        if args.check:
            print("Checking every service:")
            status = 0 if _report(stack.run_checks()) else 1
            stack.write_summary("running")
        else:
            # Until Ctrl-C / SIGTERM, or until a service dies: then the rest is stopped and
            # the sandbox exits non-zero, naming it (a half stack is no sandbox).
            dead = stack.watch()
            print(
                f"sandbox: {dead.name} {dead.exit_description()}; its log is "
                f"{dead.log_path}. End of it:\n{dead.log_tail()}\n"
                "sandbox: stopping the other services.",
                file=sys.stderr,
                flush=True,
            )
            status = 3
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
    except (SandboxError, PortInUse) as e:
        print(f"sandbox: {e}", file=sys.stderr)
        status = 2
    except (ServiceError, AutoLoginError, HTTPError, OSError) as e:
        print(f"sandbox: {e}", file=sys.stderr)
        status = 1
    finally:
        # Finish stopping even if Ctrl-C is pressed again.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack.stop():
            print("Sandbox stopped." if status == 0 else "Sandbox stopped (see above).")
    return status


if __name__ == "__main__":
    sys.exit(main())
