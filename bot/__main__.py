"""``python -m bot``: serve the GitHub App on ``--host``/``--port``."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from bot.logs import configure_logging
from bot.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Littlest Classroom: a GitHub App that gives a course repository its own "
        "persistent JupyterHub. Settings come from the environment and .env.",
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
    from bot.app import make_app

    web.run_app(
        make_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=30,
        access_log=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
