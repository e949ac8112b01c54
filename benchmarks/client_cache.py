"""Cache-hit cost of the SDK's ``validate``, beside the bare floor of the same work.

The floor is what any cache keyed by token hash must do at least: SHA-256 of
the token and one ``dict`` lookup, written bare, once as a function (called
like ``validate`` is) and once as an inline expression. Everything is
measured in the same run, best of ``--repeat``, because figures drift ±20 %
between runs on a shared machine; compare the ratios, not the absolute times.

Run: ``.venv/bin/python benchmarks/client_cache.py`` (about 15 s). The goal
(issue 3) is a hit within 3x the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
import timeit
from datetime import UTC, datetime, timedelta

from amplify_auth_client.testing import FakeAuthServer


def best_per_call(statement: str, names: dict[str, object], number: int, repeat: int) -> float:
    """Seconds per run of ``statement``, best of ``repeat`` rounds of ``number`` runs.

    A statement string rather than a lambda, so that no call is timed that
    the statement itself does not make.
    """
    return min(timeit.repeat(statement, globals=names, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the best counts")
    parser.add_argument(
        "--otel",
        action="store_true",
        help="configure an OpenTelemetry SDK (spans and metrics) first: a hit must not notice",
    )
    args = parser.parse_args()
    if args.otel:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    server = FakeAuthServer()
    # An expiring token: the hit path then checks both clocks, the worst case.
    created = server.add_token(
        "bench", ["orders:read", "orders:write"], expires_at=datetime.now(UTC) + timedelta(days=30)
    )
    token = created.token
    client = server.client()
    assert client.validate(token).valid  # the one miss; every call below is a hit
    # Usage reports off: a hit must cost the same either way (they read its count later).
    unreported = server.client(report_usage=False)
    assert unreported.validate(token).valid
    async_client = server.async_client()

    table = {hashlib.sha256(token.encode()).hexdigest(): True}
    sha256 = hashlib.sha256

    def bare_validate(token: str) -> bool | None:
        return table.get(sha256(token.encode()).hexdigest())

    async def async_hits(count: int) -> None:
        avalidate = async_client.validate
        for _ in range(count):
            await avalidate(token)

    async def async_rounds() -> float:
        await async_client.validate(token)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            await async_hits(args.number)
            best = min(best, (time.perf_counter() - start) / args.number)
        return best

    names: dict[str, object] = {
        "bare_validate": bare_validate,
        "table": table,
        "sha256": sha256,
        "token": token,
        "validate": client.validate,
        "unreported_validate": unreported.validate,
        "one_scope": ("orders:read",),
    }
    rows = [
        ("floor: sha256 + dict.get, as a function", "bare_validate(token)"),
        ("floor: sha256 + dict.get, inline", "table.get(sha256(token.encode()).hexdigest())"),
        ("AuthClient.validate(token), hit", "validate(token)"),
        ("the same, report_usage=False", "unreported_validate(token)"),
        ("AuthClient.validate(token, [scope]), hit", "validate(token, one_scope)"),
    ]
    results = [
        (name, best_per_call(statement, names, args.number, args.repeat))
        for name, statement in rows
    ]
    results.append(("await AsyncAuthClient.validate(token), hit", asyncio.run(async_rounds())))

    stats = client.cache_stats()
    assert stats.misses == 1, stats  # every measured call above was a hit

    floor = results[0][1]
    print(f"{'':44} {'µs/call':>8} {'validations/s':>14} {'x floor':>8}")
    for name, seconds in results:
        print(f"{name:44} {seconds * 1e6:8.3f} {1 / seconds:14,.0f} {seconds / floor:8.2f}")
    inline = results[1][1]
    hit = results[2][1]
    print(f"\nhit / floor (function): {hit / floor:.2f}   hit / floor (inline): {hit / inline:.2f}")
    client.close()
    unreported.close()
    asyncio.run(async_client.aclose())


if __name__ == "__main__":
    main()
