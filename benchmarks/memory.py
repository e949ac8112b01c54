"""What an anonymous client can make a server hold: per unknown token, per event subscriber.

    .venv/bin/python benchmarks/memory.py [--tokens 50000] [--subscribers 500]

Starts a real server (the embedded default, and PostgreSQL + Redis unless
``--skip-postgres``) and reads its resident memory (``VmRSS``) before and
after each load, against its own idle baseline: ``--tokens`` distinct
well-formed unknown tokens validated once each (each one a negative cache
entry), then ``--subscribers`` open ``GET /auth/events`` streams. Each load
runs twice: the cold round also pays for what the process builds once and
keeps (allocator arenas, the first response of a kind), the warm round only
for what each entry or stream holds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amplify_auth_client import generate_token  # noqa: E402
from tests.support.server import Backend, ServerProcess, running_server  # noqa: E402
from tests.support.services import fresh_database, redis_namespace  # noqa: E402


def rss(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def validate_unknown(url: str, count: int) -> None:
    # keepalive_expiry under uvicorn's 5 s keep-alive: never reuse a closing connection.
    limits = httpx.Limits(max_connections=32, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        semaphore = asyncio.Semaphore(32)

        async def one() -> None:
            async with semaphore:
                answer = await client.post("/auth/validate", json={"token": generate_token()})
                assert answer.json()["reason"] == "unknown"

        await asyncio.gather(*(one() for _ in range(count)))


async def hold_streams(
    url: str, count: int, opened: asyncio.Event, release: asyncio.Future[None]
) -> None:
    """Open ``count`` event streams, each read up to its ``ready`` (the server has
    registered it by then); set ``opened`` when all are; hold them until ``release``."""
    limits = httpx.Limits(max_connections=count + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        ready = 0

        async def one() -> None:
            nonlocal ready
            async with client.stream("GET", "/auth/events") as stream:
                async for line in stream.aiter_lines():
                    if line == "event: ready":
                        break
                ready += 1
                if ready == count:
                    opened.set()
                await asyncio.shield(release)

        await asyncio.gather(*(one() for _ in range(count)))


def measure_streams(server: ServerProcess, count: int) -> int:
    """RSS with ``count`` streams open, minus RSS before them."""

    async def run() -> int:
        before = rss(server)
        opened = asyncio.Event()
        release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        holder = asyncio.create_task(hold_streams(server.base_url, count, opened, release))
        await opened.wait()
        during = rss(server)
        release.set_result(None)
        await holder
        return during - before

    return asyncio.run(run())


def scenario(name: str, backend: Backend, tokens: int, subscribers: int) -> None:
    env = {"LOCAL_CACHE_SIZE": str(4 * tokens), "NEGATIVE_CACHE_TTL": "600"}
    with running_server(backend, env=env) as server:
        per_token = []
        for _ in range(2):  # a cold round, then a warm one
            before = rss(server)
            asyncio.run(validate_unknown(server.base_url, tokens))
            per_token.append((rss(server) - before) / tokens)
        per_subscriber = [measure_streams(server, subscribers) / subscribers for _ in range(2)]
    print(
        f"| {name} | {tokens} | {per_token[0]:.0f} / {per_token[1]:.0f} | {subscribers} "
        f"| {per_subscriber[0] / 1024:.1f} / {per_subscriber[1] / 1024:.1f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    print(
        "| backend | unknown tokens | bytes per token, cold / warm | subscribers "
        "| KiB per subscriber, cold / warm |"
    )
    print("|---|---:|---:|---:|---:|")
    scenario(
        "embedded", Backend("embedded", Path(tempfile.mkdtemp())), args.tokens, args.subscribers
    )
    if not args.skip_postgres:
        with fresh_database() as url, redis_namespace() as namespace:
            backend = Backend("postgres", Path(tempfile.mkdtemp()), url, namespace)
            scenario("postgres+redis", backend, args.tokens, args.subscribers)


if __name__ == "__main__":
    main()
