"""``python -m bot``: serve the GitHub App on ``--host``/``--port``; ``python -m bot check``
validates a course checkout without the service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiohttp import web

from bot.logs import configure_logging
from bot.settings import SettingsError, load_settings


def check_main(argv: list[str]) -> int:
    """``python -m bot check [PATH]``: needs no settings, so none are read."""
    parser = argparse.ArgumentParser(
        prog="python -m bot check",
        description="Check a course repository's checkout with the service's own code: "
        "every error in .github/classroom.yml and the package files, or the plan for a "
        "fresh server. Exit status 0 when valid, 1 when not. No network, no settings.",
    )
    parser.add_argument(
        "path", nargs="?", default=".", help="the course repository's folder (default: .)"
    )
    args = parser.parse_args(argv)
    from bot.local_check import run_check

    return run_check(Path(args.path))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A sub-command as the first word; anything else keeps the service's own options as
    # they have always been ("python -m bot --host 0.0.0.0").
    if argv[:1] == ["check"]:
        return check_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Littlest Classroom: a GitHub App that gives a course repository its own "
        "persistent JupyterHub. Settings come from the environment and .env.",
        epilog="To check a course repository's files instead: python -m bot check [PATH]",
    )
    parser.add_argument("--host", help="listen address (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: PORT or 3000)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    import uvloop

    from bot.app import make_app

    web.run_app(
        make_app(settings),
        # uvloop: the same asyncio API, with a faster event loop under webhook load.
        loop=uvloop.new_event_loop(),
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=30,
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
