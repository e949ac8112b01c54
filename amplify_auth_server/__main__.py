"""``amplify-auth-server``: serve, migrate, or mint an admin token.

    amplify-auth-server                      # serve (same as `serve`)
    amplify-auth-server migrate              # apply database migrations
    amplify-auth-server create-admin-token   # mint an admin token, print it once

Configuration comes from the environment and `.env` (see
:class:`~amplify_auth_server.config.Settings`); a bad setting stops the
command with one line saying what to change, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Coroutine, Sequence

from pydantic import ValidationError

from amplify_auth_server.config import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"]).upper() or "settings"
            print(f"amplify-auth-server: {where}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces each of its built-in plugins at INFO: eight lines on
    # every migration, saying nothing about the database.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from amplify_auth_server.app import SHUTDOWN_GRACE, create_app, end_event_streams
    from amplify_auth_server.perimeter import Limits, open_file_cap, protocol_class, sweep

    if settings.migrate_on_start:
        # Before uvicorn, so that an unreachable database is one clear line
        # and exit code 1, not a start-up traceback.
        _run(_migrate(settings), settings)
        settings = settings.model_copy(update={"migrate_on_start": False})
    settings = _within_open_files(settings, open_file_cap(settings.max_connections))
    app = create_app(settings)
    limits = Limits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )

    class Server(uvicorn.Server):
        sweeper: asyncio.Task[None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # Slow clients' connections are closed by one sweep, not a timer each.
            self.sweeper = asyncio.create_task(sweep(self.server_state, limits))
            freeze_start_up_heap()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for every open response to end before it stops
            # the app, and an event stream never ends by itself: end them
            # first. Their subscribers reconnect, to another replica or to
            # this one once it is back, and resume where they were.
            end_event_streams(app)
            if self.sweeper is not None:
                self.sweeper.cancel()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.access_log,
        server_header=False,
        # uvicorn would trust X-Forwarded-For from 127.0.0.1 by default; the
        # app applies TRUSTED_PROXIES itself (see create_app), and only it.
        proxy_headers=False,
        # The header and read limits live in this protocol (uvicorn has no option
        # for them with httptools); the connection cap and idle timeout are uvicorn's.
        http=protocol_class(limits),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    Server(config).run()


def _within_open_files(settings: Settings, connections: int) -> Settings:
    """``settings`` for the ``connections`` the open-file limit lets this process hold.

    Fewer than ``MAX_CONNECTIONS``, the subscriber cap may then be as many
    as the connections, or more: what the settings refuse at start-up (the
    stream's subscribers holding every connection, none left for a
    validation). It is lowered to half of them, and both are said.
    """
    if connections >= settings.max_connections:
        return settings
    log = logging.getLogger("amplify_auth_server")
    log.warning(
        "the open-file limit allows %d connections, not MAX_CONNECTIONS=%d; "
        "raise the limit (ulimit -n) to hold more",
        connections,
        settings.max_connections,
    )
    subscribers = settings.events_max_subscribers
    if subscribers >= connections:
        subscribers = connections // 2
        log.warning(
            "EVENTS_MAX_SUBSCRIBERS lowered from %d to %d, half of those connections, "
            "so that event stream subscribers cannot take them all",
            settings.events_max_subscribers,
            subscribers,
        )
    return settings.model_copy(
        update={"max_connections": connections, "events_max_subscribers": subscribers}
    )


def freeze_start_up_heap() -> None:
    """Put every object alive once the server has started out of the garbage
    collector's reach (:func:`gc.freeze`), after one last collection.

    Start-up leaves about 150,000 objects that live as long as the process
    (modules, the app, its models and compiled statements), and every full
    collection walked them all: on the reference machine, three pauses of
    80-90 ms in each 4 s of creates, 9 % of the server's time, in the
    middle of requests. Frozen, a full collection walks only what the
    server made since (caches, connections). The price: what start-up made
    and later drops inside a reference cycle is never freed (a pool
    connection of the first minute that a database restart replaces, say),
    at most once per object start-up made. Done here, in the process
    ``amplify-auth-server`` serves, not in the app's lifespan: a process
    that builds many apps (a test suite) would pin each one's garbage.
    """
    gc.collect()
    gc.freeze()
    logging.getLogger("amplify_auth_server").debug(
        "froze %d start-up objects out of the garbage collector's reach", gc.get_freeze_count()
    )


async def _migrate(settings: Settings) -> None:
    from amplify_auth_server.database import create_engine, migrate

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def _create_admin_token(settings: Settings, name: str) -> None:
    from amplify_auth_client.contract import ADMIN_SCOPE
    from amplify_auth_server.commands import CreateToken, Writer
    from amplify_auth_server.database import create_engine, migrate
    from amplify_auth_server.models import SYSTEM
    from amplify_auth_server.store import TokenStore

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        # A one-shot writer: a new token has nothing cached anywhere, and
        # its insert cannot conflict with a running server's writer.
        minted = await Writer(TokenStore(engine), propagation=None).run_one(
            CreateToken(actor=SYSTEM, name=name, scopes=(ADMIN_SCOPE,))
        )
    finally:
        await engine.dispose()
    print(f"created admin token {minted.record.id}; it is shown once:", file=sys.stderr)
    print(minted.token)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="amplify-auth-server",
        description="The AMPLIfy Auth server. Configured by environment variables (see docs).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the HTTP API (the default)")
    serve.add_argument("--host", help="interface to bind (default: HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, else 8000)")
    commands.add_parser("migrate", help="apply pending database migrations, then exit")
    admin = commands.add_parser(
        "create-admin-token", help="mint an admin token in the database and print it once"
    )
    admin.add_argument("--name", default="admin", help="the token's name (default: admin)")
    args = parser.parse_args(argv)

    settings = _settings()
    _configure_logging(settings.log_level)
    if args.command in (None, "serve"):
        _serve(settings, getattr(args, "host", None), getattr(args, "port", None))
    elif args.command == "migrate":
        _run(_migrate(settings), settings)
    else:
        _run(_create_admin_token(settings, _token_name(args.name)), settings)


def _token_name(name: str) -> str:
    """``--name`` held to the API's rules for a token's name, or one line and exit 2."""
    from pydantic import TypeAdapter

    from amplify_auth_server.schemas import Name

    try:
        return TypeAdapter(Name).validate_python(name)
    except ValidationError as exc:
        (error, *_) = exc.errors(include_input=False, include_url=False)
        reason = (
            "a name has no control characters, and no space at either end"
            if error["type"] == "string_pattern_mismatch"
            else error["msg"]
        )
        print(f"amplify-auth-server: --name: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(work: Coroutine[None, None, None], settings: Settings) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from amplify_auth_server.database import UnknownSchema, async_url

    try:
        asyncio.run(work)
    except (SQLAlchemyError, OSError, UnknownSchema) as exc:
        url = async_url(settings.database_url)
        # A password may be in the query too (libpq's password=, sslpassword=).
        url = url.difference_update_query(["password", "sslpassword"])
        where = url.render_as_string(hide_password=True)
        said = str(getattr(exc, "orig", None) or exc).splitlines()
        reason = said[0] if said else type(exc).__name__  # a TimeoutError says nothing
        print(f"amplify-auth-server: cannot use the database {where}: {reason}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
