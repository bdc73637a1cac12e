"""`python -m runtime` (console script `refract-runtime`): run the Prisma server with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from runtime.app import RuntimeApp
from runtime.config import ConfigError, load_config
from runtime.http import RuntimeHttpProtocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refract-runtime", description=__doc__)
    parser.add_argument("--config", help="a Prisma config YAML file (default: $PRISMA_CONFIG)")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 - a server, like Prisma's
    parser.add_argument("--port", type=int, help="overrides the config's `port` (4466)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("RUNTIME_WORKERS", "1")),
        help="processes serving the port (default 1; use about one per core)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(path=args.config)
    except (ConfigError, OSError) as exc:
        print(f"refract-runtime: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("refract-runtime: --workers must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    options = {
        "host": args.host,
        "port": args.port or config.port,
        "log_level": args.log_level,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # the runtime does not use the client's address
        "http": RuntimeHttpProtocol,
        "lifespan": "on",
    }
    if args.workers == 1:
        uvicorn.run(RuntimeApp(config), **options)
        return 0
    # Worker processes import the app themselves; they read the same config file. Every piece
    # of state they share (projects, throttle buckets) is in PostgreSQL and Redis.
    if args.config:
        os.environ["PRISMA_CONFIG_PATH"] = os.path.abspath(args.config)
        os.environ.pop("PRISMA_CONFIG", None)
    uvicorn.run("runtime.__main__:from_environment", factory=True, workers=args.workers, **options)
    return 0


def from_environment() -> RuntimeApp:
    """The app of one worker process, configured from PRISMA_CONFIG or PRISMA_CONFIG_PATH."""
    return RuntimeApp(load_config())


if __name__ == "__main__":
    sys.exit(main())
