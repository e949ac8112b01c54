"""The health screen: what ``GET /health`` and ``GET /metrics`` know, for a person.

The components come from the health route itself; the rest from the
metrics registry (by sample name, as a Prometheus scrape would read them),
so the screen and the scrape can never disagree. The revocation lag is the
time from a change's commit to the last replica's confirmation that its
cache has it, as this process measured its own changes; what a subscribed
SDK adds on top (one event over an open stream) the server cannot see.
"""

from __future__ import annotations

import math

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


#: The histogram of :attr:`~amplify_auth_server.metrics.Metrics.propagation`.
_PROPAGATION = "amplify_auth_change_propagation_seconds"


def _lag(signed: SignedInDep) -> str:
    """The revocation lag this process measured: its mean, and the bound 95 % stay within."""
    count = _sample(signed, f"{_PROPAGATION}_count")
    if count == 0:
        return "no changes yet"
    mean = _sample(signed, f"{_PROPAGATION}_sum") / count
    (histogram,) = (m for m in signed.parts.metrics.registry.collect() if m.name == _PROPAGATION)
    bound = next(
        (
            float(s.labels["le"])
            for s in histogram.samples
            if s.name.endswith("_bucket") and s.value >= 0.95 * count
        ),
        math.inf,
    )
    within = "more than 2.5 s" if math.isinf(bound) else f"{bound * 1000:g} ms"
    return f"mean {mean * 1000:.1f} ms over {int(count)} changes; 95 % within {within}"


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
        "Revocation lag: commit to every replica (changes made here)": _lag(signed),
        "Write commands waiting": str(int(_sample(signed, "amplify_auth_command_queue_depth"))),
    }
    return page(
        request,
        "health.html",
        context(signed, title="Health", report=report, figures=figures),
    )
