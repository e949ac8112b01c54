"""The health screen: what ``GET /health`` and ``GET /metrics`` know, for a person.

The components come from the health route itself; the rest from the
metrics registry (by sample name, as a Prometheus scrape would read them),
so the screen and the scrape can never disagree.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from amplify_auth_server.console._access import SignedInDep
from amplify_auth_server.console._render import page
from amplify_auth_server.console._tokens import context
from amplify_auth_server.routes import health as api

router = APIRouter()


def _sample(signed: SignedInDep, name: str, **labels: str) -> float:
    value = signed.parts.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _ratio(hits: float, misses: float) -> str:
    total = hits + misses
    return "no lookups yet" if total == 0 else f"{hits / total:.1%} of {int(total)} lookups"


@router.get("/health")
async def health(request: Request, signed: SignedInDep) -> Response:
    report = await api.health(signed.parts, Response())
    cache = "amplify_auth_cache_requests_total"
    figures = {
        "Event stream subscribers (this process)": str(signed.parts.events.subscribers),
        "Local cache hit ratio": _ratio(
            _sample(signed, cache, tier="local", outcome="hit"),
            _sample(signed, cache, tier="local", outcome="miss"),
        ),
        "Redis cache hit ratio": _ratio(
            _sample(signed, cache, tier="redis", outcome="hit"),
            _sample(signed, cache, tier="redis", outcome="miss"),
        ),
        "Tokens answered from the database while Redis catches up": str(
            int(_sample(signed, "amplify_auth_cache_suspects"))
        ),
        "Write commands waiting": str(int(_sample(signed, "amplify_auth_command_queue_depth"))),
    }
    return page(
        request,
        "health.html",
        context(signed, title="Health", report=report, figures=figures),
    )
