"""The ASGI application and the lifespan that builds and tears down its parts.

Start-up order matters: the schema exists before anything reads it, the
writer runs before the admin token is registered through it, and Redis
may be down at start-up without stopping the server (validation then goes
to the database until Redis answers).

Shut-down runs the other way: the writer drains every queued command while
the caches and the database are still there to receive them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from amplify_auth_client import __version__
from amplify_auth_server.bootstrap import register_admin_token
from amplify_auth_server.cache import LocalCache, RedisCache, TokenCache
from amplify_auth_server.commands import CommandQueue, Writer
from amplify_auth_server.config import Settings
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.deps import Services
from amplify_auth_server.invalidation import InvalidationBus
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.middleware import BodySizeLimit, RequestLatency
from amplify_auth_server.routes import errors, health, tokens, validate
from amplify_auth_server.store import TokenStore
from amplify_auth_server.validation import Validator

logger = logging.getLogger("amplify_auth_server")

# How long start-up waits for the invalidation channel before serving
# without the local cache (it turns on by itself once Redis answers).
_REDIS_STARTUP_WAIT = 2.0


def _redis_client(url: str) -> redis.Redis:
    # One quick retry covers a connection Redis closed (a restart); more,
    # with backoff, would turn a Redis outage into slow validations instead
    # of a fast fall back to the database.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=15,
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    engine = create_engine(settings.database_url)
    client: redis.Redis | None = None
    shared: RedisCache | None = None
    bus: InvalidationBus | None = None
    try:
        if settings.migrate_on_start:
            await migrate(engine)
        store = TokenStore(engine)
        if settings.redis_url is None:
            local = LocalCache(
                maxsize=settings.local_cache_size,
                ttl=settings.token_cache_ttl,
                negative_ttl=settings.negative_cache_ttl,
            )
            cache = TokenCache(local)
        else:
            local = LocalCache(
                maxsize=settings.local_cache_size,
                ttl=min(settings.local_cache_ttl, settings.token_cache_ttl),
                negative_ttl=min(settings.local_cache_ttl, settings.negative_cache_ttl),
            )
            client = _redis_client(settings.redis_url)
            shared = RedisCache(
                client,
                prefix=settings.redis_key_prefix,
                ttl=settings.token_cache_ttl,
                negative_ttl=settings.negative_cache_ttl,
                metrics=metrics,
            )
            bus = InvalidationBus(
                client,
                prefix=settings.redis_key_prefix,
                local=local,
                shared=shared,
                ack_timeout=settings.invalidation_ack_timeout,
            )
            bus.start()
            if not await bus.wait_live(_REDIS_STARTUP_WAIT):
                logger.warning("redis is not answering; serving from the database until it does")
            cache = TokenCache(local, shared, bus)
        queue = CommandQueue(Writer(store, cache), metrics)
        queue.start()
        app.state.services = Services(
            settings=settings,
            metrics=metrics,
            store=store,
            cache=cache,
            validator=Validator(store, cache, metrics),
            queue=queue,
            redis=client,
            bus=bus,
        )
        try:
            await register_admin_token(settings, queue)
            yield
        finally:
            await queue.stop()
    finally:
        if bus is not None:
            await bus.stop()
        if shared is not None:
            await shared.close()
        if client is not None:
            await client.aclose()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server as an ASGI app: ``uvicorn amplify_auth_server.app:create_app --factory``."""
    settings = settings or Settings()
    app = FastAPI(
        title="AMPLIfy Auth",
        version=__version__,
        summary="Opaque-token validation and management for Python microservices.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    errors.install(app)
    app.include_router(validate.router)
    app.include_router(tokens.router)
    app.include_router(health.router)
    # Outermost last: latency sees everything, the size cap guards the fast path.
    app.add_middleware(validate.ValidateFastPath)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLatency, histogram=metrics.request_latency)
    return app
