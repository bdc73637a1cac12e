"""`python -m runtime` (console script `refract-runtime`): run the Prisma server with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from runtime.app import RuntimeApp
from runtime.config import ConfigError, load_config
from runtime.http import RuntimeHttpProtocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refract-runtime", description=__doc__)
    parser.add_argument("--config", help="a Prisma config YAML file (default: $PRISMA_CONFIG)")
    parser.add_argument(
        "--host",
        action="append",
        help="an address to listen on; repeat it for several (default $HOST or 0.0.0.0)",
    )
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
    hosts = args.host or [os.environ.get("HOST", "0.0.0.0")]  # noqa: S104 - a server, like Prisma's
    port = args.port or config.port
    options = {
        "host": hosts[0],
        "port": port,
        "log_level": args.log_level,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # the runtime does not use the client's address
        "http": RuntimeHttpProtocol,
        "lifespan": "on",
    }
    if args.workers == 1 and len(hosts) == 1:
        uvicorn.run(RuntimeApp(config), **options)
        return 0
    if args.workers > 1:
        # Worker processes import the app themselves; they read the same config file. Every
        # piece of state they share (projects, throttle buckets, the registry of servers) is in
        # PostgreSQL and Redis.
        if args.config:
            os.environ["PRISMA_CONFIG_PATH"] = os.path.abspath(args.config)
            os.environ.pop("PRISMA_CONFIG", None)
        options.update(workers=args.workers, factory=True)
    # Several addresses (private servers on their own loopback addresses, say): the sockets are
    # bound here and every worker serves all of them.
    try:
        sockets = [_bind(host, port) for host in hosts]
    except OSError as exc:
        print(f"refract-runtime: cannot listen: {exc}", file=sys.stderr)
        return 1
    for host in hosts:
        logging.getLogger("runtime").info("listening on %s:%d", host, port)
    if args.workers == 1:
        uvicorn.Server(uvicorn.Config(RuntimeApp(config), **options)).run(sockets=sockets)
    else:
        server_config = uvicorn.Config("runtime.__main__:from_environment", **options)
        Multiprocess(server_config, sockets=sockets).run()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, inheritable by worker processes (as uvicorn's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.set_inheritable(True)
    return sock


def from_environment() -> RuntimeApp:
    """The app of one worker process, configured from PRISMA_CONFIG or PRISMA_CONFIG_PATH."""
    return RuntimeApp(load_config())


if __name__ == "__main__":
    sys.exit(main())
