"""Operations: ``GET /health`` in the seed's shape, and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from amplify_auth_client import __version__
from amplify_auth_server.deps import ServicesDep
from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.schemas import HealthComponents, HealthResponse

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    responses={503: {"model": HealthResponse, "description": "Database or writer down"}},
)
async def health(parts: ServicesDep, response: Response) -> HealthResponse:
    """`healthy`; `degraded` (still 200) when only Redis is down, because validation
    then still answers correctly from the database; `unhealthy` (503) when the
    database or the writer is down."""
    try:
        await parts.store.ping()
        database = "healthy"
    except DatabaseUnavailable:
        database = "unhealthy"
    redis = await parts.cache.redis_status()
    writer = "running" if parts.queue.running else "stopped"
    if database != "healthy" or writer != "running":
        overall = "unhealthy"
        response.status_code = 503
    elif redis == "unhealthy":
        overall = "degraded"
    else:
        overall = "healthy"
    return HealthResponse(
        status=overall,
        version=__version__,
        components=HealthComponents(database=database, redis=redis, command_processor=writer),
    )


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(parts: ServicesDep) -> Response:
    return Response(generate_latest(parts.metrics.registry), media_type=CONTENT_TYPE_LATEST)
