"""The ASGI application and the lifespan that builds and tears down its parts.

Start-up order matters: the schema exists before anything reads it, the
writer runs before the admin token is registered through it, and Redis
may be down at start-up without stopping the server (validation then goes
to the database until Redis answers).

Shut-down runs the other way: the writer drains every queued command while
the caches and the database are still there to receive them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any, Final

import redis.asyncio as redis
from fastapi import Depends, FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from amplify_auth_client import __version__
from amplify_auth_server import logs, telemetry
from amplify_auth_server.bodies import JsonBodies
from amplify_auth_server.bootstrap import register_admin_token
from amplify_auth_server.cache import LocalCache, RedisBudget, RedisCache, TokenCache
from amplify_auth_server.checkpoints import WalCheckpoints
from amplify_auth_server.commands import CommandQueue, Writer
from amplify_auth_server.config import Settings
from amplify_auth_server.database import WRITE_POOL_SIZE, create_engine, migrate
from amplify_auth_server.denials import Denials
from amplify_auth_server.deps import Services, strict_query
from amplify_auth_server.events import EventFeed, MemoryEventFeed, RedisEventFeed
from amplify_auth_server.expiring import ExpiringScan
from amplify_auth_server.invalidation import InvalidationBus, Lease
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.middleware import (
    BodySizeLimit,
    CreateFastPath,
    NoTokensInUrls,
    RequestLatency,
    ValidateFastPath,
)
from amplify_auth_server.outbox import OutboxReplay
from amplify_auth_server.pages import Cursors
from amplify_auth_server.propagation import Propagation
from amplify_auth_server.rotations import IdleRotations
from amplify_auth_server.routes import errors, events, health, tokens, usage, validate
from amplify_auth_server.schemas import ErrorResponse
from amplify_auth_server.store import TokenStore
from amplify_auth_server.throttle import Budgets, FailureThrottle
from amplify_auth_server.usage import UsageCounter, UsageFlush, UsageReports
from amplify_auth_server.validation import Validator
from amplify_auth_server.webhooks import Signer, WebhookOutbox

logger = logging.getLogger("amplify_auth_server")

# How long start-up waits for the invalidation channel before serving
# without the local cache (it turns on by itself once Redis answers).
_REDIS_STARTUP_WAIT = 2.0


# The followers' connections (the invalidation listener, the event stream
# reader) wait this long for a reply: their own liveness checks (the lease, a
# blocking XREAD's return) tell a dead Redis from a quiet one, and a slow link
# must not look dead (it dropped every subscriber again and again).
_FOLLOWER_TIMEOUT: Final = 5.0


def _redis_client(url: str, *, retries: int, timeout: float = 1.0) -> redis.Redis:
    # Short timeouts and no backoff: a Redis outage must turn into a fast
    # fall back to the database, not into slow validations.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), retries),
    )


async def _closing(stack: AsyncExitStack, client: redis.Redis) -> redis.Redis:
    stack.push_async_callback(client.aclose)
    return client


def _budgets(settings: Settings) -> Budgets:
    return Budgets.parse(
        validation=settings.throttle_validation_failures,
        malformed=settings.throttle_malformed_validations,
        admin=settings.throttle_admin_failures,
        signin=settings.throttle_console_signin_failures,
    )


async def _build_cache(
    settings: Settings, store: TokenStore, metrics: Metrics, stack: AsyncExitStack
) -> tuple[TokenCache, Propagation, EventFeed, FailureThrottle]:
    """The read tiers, the after-commit path, the event feed and the failure throttle,
    wired to one another."""
    if settings.redis_url is None:
        if not settings.is_embedded:
            logger.warning(
                "PostgreSQL without REDIS_URL: each server process keeps its own cache, so a "
                "revoke made through one process reaches another only after TOKEN_CACHE_TTL. "
                "Run one process, or set REDIS_URL."
            )
        local = LocalCache(
            maxsize=settings.local_cache_size,
            ttl=settings.token_cache_ttl,
            negative_ttl=settings.negative_cache_ttl,
        )
        feed = MemoryEventFeed(max_subscribers=settings.events_max_subscribers)
        throttle = FailureThrottle(_budgets(settings), metrics=metrics)
        return TokenCache(local), Propagation(local, feed=feed), feed, throttle
    local = LocalCache(
        maxsize=settings.local_cache_size,
        ttl=min(settings.local_cache_ttl, settings.token_cache_ttl),
        negative_ttl=min(settings.local_cache_ttl, settings.negative_cache_ttl),
    )
    # Keys and channels carry the database's id: two deployments sharing a
    # Redis and a prefix can never read each other's entries.
    prefix = f"{settings.redis_key_prefix}:{await store.instance_id()}"
    # One quick retry covers a connection Redis closed (a restart).
    client = await _closing(stack, _redis_client(settings.redis_url, retries=1))
    # One view of Redis's health for the validation path: the cache tier and
    # the throttle each act on what the other learns.
    budget = RedisBudget(read_budget=settings.redis_read_budget, metrics=metrics)
    shared = RedisCache(
        client,
        prefix=prefix,
        ttl=settings.token_cache_ttl,
        negative_ttl=settings.negative_cache_ttl,
        metrics=metrics,
        budget=budget,
    )
    throttle = FailureThrottle(
        _budgets(settings), metrics=metrics, redis=client, prefix=prefix, budget=budget
    )
    suspects: set[str] = set()
    lease = Lease()
    cache = TokenCache(local, shared, suspects=suspects, hearing=lease)
    # The subscription's own connection never reconnects behind our back:
    # a gap in hearing must surface as an error (see invalidation).
    listener = await _closing(
        stack, _redis_client(settings.redis_url, retries=0, timeout=_FOLLOWER_TIMEOUT)
    )
    bus = InvalidationBus(
        client,
        listener,
        prefix=prefix,
        local=local,
        lease=lease,
        ack_timeout=settings.invalidation_ack_timeout,
    )
    bus.start()
    stack.push_async_callback(bus.stop)
    # The event stream's reader blocks on XREAD: a connection of its own,
    # which (like the listener's) never reconnects behind our back.
    reader = await _closing(
        stack, _redis_client(settings.redis_url, retries=0, timeout=_FOLLOWER_TIMEOUT)
    )
    announced = RedisEventFeed(
        client,
        reader,
        stream=shared.stream,
        max_subscribers=settings.events_max_subscribers,
        on_event=local.evict,
    )
    announced.start()
    stack.push_async_callback(announced.stop)
    if not await bus.wait_live(_REDIS_STARTUP_WAIT) or not await announced.wait_live(0.5):
        logger.warning("redis is not answering; serving from the database until it does")
    propagation = Propagation(local, suspects=suspects, shared=shared, bus=bus)
    replay = OutboxReplay(store, propagation)
    replay.start()
    stack.push_async_callback(replay.stop)
    metrics.watch_suspects(lambda: len(suspects))
    return cache, propagation, announced, throttle


def _start_webhooks(
    settings: Settings,
    store: TokenStore,
    queue: CommandQueue,
    outbox: WebhookOutbox,
    metrics: Metrics,
    stack: AsyncExitStack,
) -> None:
    """The sender of the webhook outbox and the expiring-token scan, both per replica."""
    # Imported here: its HTTP client (httpx) loads only in a server with webhooks.
    from amplify_auth_server.deliveries import Retries, WebhookSender

    assert settings.webhook_secret is not None  # Settings refuses URLs without it
    sender = WebhookSender(
        store,
        outbox,
        Signer(settings.webhook_secret.get_secret_value()),
        metrics,
        retries=Retries(
            initial=timedelta(seconds=settings.webhook_retry_initial),
            horizon=timedelta(hours=settings.webhook_retry_hours),
        ),
        timeout=settings.webhook_timeout,
        interval=settings.webhook_poll_interval,
    )
    sender.start()
    stack.push_async_callback(sender.stop)
    scan = ExpiringScan(
        store, queue, days=settings.webhook_expiring_days, interval=settings.webhook_scan_interval
    )
    scan.start()
    stack.push_async_callback(scan.stop)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        embedded = engine.dialect.name == "sqlite"
        # Embedded, the WAL is checkpointed beside the writer, not in its
        # commits (amplify_auth_server.checkpoints).
        write_engine = create_engine(
            settings.database_url, pool_size=WRITE_POOL_SIZE, autocheckpoint=not embedded
        )
        stack.push_async_callback(write_engine.dispose)
        if settings.migrate_on_start:
            await migrate(write_engine)
        checkpoints = WalCheckpoints(engine, write_engine) if embedded else None
        if checkpoints is not None:
            checkpoints.start()
            # Stopped after the writer has drained; closing the database's
            # last connection then checkpoints what is left (SQLite does).
            stack.push_async_callback(checkpoints.stop)
        store = TokenStore(engine, write_engine)
        cache, propagation, feed, throttle = await _build_cache(settings, store, metrics, stack)
        metrics.watch_subscribers(lambda: feed.subscribers)
        # No WEBHOOK_URLS, no outbox: commands then write no webhook rows at all.
        outbox = WebhookOutbox(settings.webhook_url_list) if settings.webhook_url_list else None
        queue = CommandQueue(
            Writer(store, propagation, webhooks=outbox),
            metrics,
            between_batches=None if checkpoints is None else checkpoints.between_batches,
        )
        queue.start()
        # Unwound first: the writer drains while caches and database still work.
        stack.push_async_callback(queue.stop)
        if outbox is not None:
            # Before the writer stops: the scan submits through it.
            _start_webhooks(settings, store, queue, outbox, metrics, stack)
        counter = UsageCounter()
        validator = Validator(
            store, cache, metrics, uses=counter.uses if settings.usage_counting else None
        )
        denials = Denials(queue, throttle, validator, window=settings.audit_failure_window)
        denials.start()
        # Before the writer stops: the last window's rows go through it.
        stack.push_async_callback(denials.stop)
        flush = None
        if settings.usage_counting:
            flush = UsageFlush(counter, queue, interval=settings.usage_flush_seconds)
            flush.start()
            # Before the writer stops, as the denials: the last counts are written.
            stack.push_async_callback(flush.stop)
        rotations = IdleRotations(store, queue, interval=settings.rotation_idle_scan_seconds)
        if settings.usage_counting:
            # Without usage nothing could tell an idle token from a busy one
            # (and rotations refuse the limit: routes.tokens._can_tell_idle).
            rotations.start()
            stack.push_async_callback(rotations.stop)
        app.state.services = Services(
            settings=settings,
            metrics=metrics,
            store=store,
            cache=cache,
            validator=validator,
            queue=queue,
            events=feed,
            # Signed with the database's installation id: the same on every replica.
            cursors=Cursors((await store.instance_id()).encode()),
            throttle=throttle,
            denials=denials,
            usage=UsageReports(counter, validator, throttle),
            usage_flush=flush,
            rotations=rotations,
        )
        await register_admin_token(settings, queue)
        yield


#: How long a stopping server waits for requests under way before it cancels
#: them (``--timeout-graceful-shutdown`` when run under uvicorn directly).
SHUTDOWN_GRACE: Final = 10


def end_event_streams(app: FastAPI) -> None:
    """End every ``/auth/events`` stream: the first step of stopping the server."""
    services: Services | None = getattr(app.state, "services", None)
    if services is not None:
        services.events.close()


#: FastAPI's own OpenTelemetry (0.16x and later) off where it exists: our
#: ``telemetry.Tracing`` already makes a span per request (a second one would
#: double every trace), and FastAPI asks the global providers whether it is
#: on before every request, the validation fast path's included.
_NATIVE_TELEMETRY_OFF: Final[dict[str, Any]] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server as an ASGI app: ``uvicorn amplify_auth_server.app:create_app --factory``."""
    settings = settings or Settings()
    logs.install()
    app = FastAPI(
        title="AMPLIfy Auth",
        version=__version__,
        summary="Opaque-token validation and management for Python microservices.",
        lifespan=_lifespan,
        dependencies=[Depends(strict_query)],
        # Every operation: the refusal comes before any route is chosen.
        responses={
            400: {
                "model": ErrorResponse,
                "description": "A token in the query string (`token_in_url`): send it in the "
                "Authorization header or the JSON body, and consider it exposed",
            }
        },
        **_NATIVE_TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    errors.install(app)
    app.include_router(validate.router)
    app.include_router(events.router)
    app.include_router(tokens.router)
    app.include_router(usage.router)
    app.include_router(health.router)
    if settings.console_enabled:
        # Imported only when served: Jinja2 and the templates cost start-up time.
        from amplify_auth_server.console import PATH, create_console

        app.mount(PATH, create_console(app))
    # Outermost last: latency sees everything, the size cap guards the
    # validation fast path, which answers before the strict body check the
    # other routes get; the create fast path takes the body that check parsed.
    app.add_middleware(CreateFastPath)
    app.add_middleware(JsonBodies)
    app.add_middleware(ValidateFastPath)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(NoTokensInUrls)
    app.add_middleware(
        RequestLatency,
        histogram=metrics.request_latency,
        streams=frozenset({events.EVENTS_PATH}),
    )
    if settings.proxy_hosts:
        # Outermost: every part sees the client the trusted proxy named. Not
        # added otherwise, so that the socket's peer is the client and a
        # request costs nothing more.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.proxy_hosts)
    telemetry.install(app)  # OpenTelemetry spans, only when an SDK is configured
    return app
