"""Cache-miss round trip of the SDK against a local server, beside raw httpx.

    .venv/bin/python benchmarks/client_miss.py [--calls 3000]

Starts a real server (embedded default) on loopback. Each miss is an SDK
``validate`` with the cache off (``cache_size=0``), so every call is one HTTP
round trip; the baseline is the same POST sent with a bare ``httpx.Client``.
The ratio is the SDK's own cost on a miss (building the request, reading the
answer, the retry policy), on top of a round trip it cannot avoid.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amplify_auth_client import AsyncAuthClient, AuthClient  # noqa: E402
from tests.support.server import Backend, running_server  # noqa: E402


def timed(call, calls: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (
        len(samples) / sum(samples),
        statistics.median(ordered) * 1e3,
        ordered[int(len(ordered) * 0.99)] * 1e3,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with running_server(Backend("embedded", Path(tempfile.mkdtemp()))) as server:
        url = server.base_url
        with AuthClient(url, admin_token=server.admin_token) as admin:
            token = admin.create_token("bench", ["read"]).token
        body = {"token": token, "required_scopes": []}
        results: dict[str, list[tuple[float, float, float]]] = {"raw": [], "sdk": []}
        with httpx.Client(base_url=url) as raw, AuthClient(url, cache_size=0) as sdk:
            for _ in range(args.rounds):  # alternate, so that drift hits both alike
                results["raw"].append(
                    summary(timed(lambda: raw.post("/auth/validate", json=body), args.calls))
                )
                results["sdk"].append(summary(timed(lambda: sdk.validate(token), args.calls)))

        import asyncio

        async def async_round() -> tuple[float, float, float]:
            async with AsyncAuthClient(url, cache_size=0) as client:
                samples = []
                for _ in range(args.calls):
                    started = time.perf_counter()
                    await client.validate(token)
                    samples.append(time.perf_counter() - started)
                return summary(samples)

        results["async sdk"] = [asyncio.run(async_round()) for _ in range(args.rounds)]

    def best(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        return max(rows, key=lambda row: row[0])

    raw_rate = best(results["raw"])[0]
    print(f"\n{args.calls} sequential calls, best of {args.rounds} alternating rounds\n")
    print("| client | calls/s | p50 ms | p99 ms | ratio to raw httpx |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        rate, p50, p99 = best(rows)
        print(f"| {name} | {rate:.0f} | {p50:.3f} | {p99:.3f} | {rate / raw_rate:.2f} |")


if __name__ == "__main__":
    main()
