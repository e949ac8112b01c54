"""A million tokens: listing pages, validation misses, writes and a bulk revocation, at scale.

    .venv/bin/python benchmarks/scale.py [--tokens 1000000] [--backend both]
    .venv/bin/python benchmarks/scale.py writes [--creates 4000]
    PYTHONPATH=<tree> .venv/bin/python benchmarks/scale.py creates

``pages`` (the default) fills a fresh database (PostgreSQL, and a SQLite file)
with ``--tokens`` tokens straight through SQL (the API would take an hour),
starts a real server on it, and times, over HTTP:

* a page of 100 at the first page, a middle one and the last one (the
  cursors are walked to there first, by pages of 1000), and with each
  filter (status, name, scope, expires_within_days);
* a validation miss (the database path: local cache off, no Redis), against
  the same miss on a database of 1,000 tokens, side by side;
* the server's resident memory before and after paging through 10,000 rows.

``writes`` times, side by side in one run, creates through the API from 32
concurrent clients against the floor: the same count of two-row
transactions sent by asyncpg straight to the same PostgreSQL over 32
connections; then creates embedded (SQLite); then 10,000 tokens revoked by
one bulk call (by filter), to its return and to the last eviction in a
subscribed SDK in another process.

``creates`` times only the creates through the API, embedded and on
PostgreSQL: run once as is and once with ``PYTHONPATH`` naming a checkout of
the baseline (``git worktree add``), whose code the server process then
runs, for a side-by-side ratio on the same machine.

``beside --baseline <tree>`` serves this tree and the baseline at the same
time, embedded, each with its own 32 clients, and gives the ratio of their
creates/s round by round: the same moment of a machine whose speed drifts.
``turns --baseline <tree>`` serves both too, but drives each alone in turn,
as ``writes`` drives one: what a server reaches by itself depends on how
long its writer keeps the clients waiting, not only on what a create costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server_validate import wrk  # noqa: E402

from amplify_auth_client import AuthClient, generate_token, hash_token  # noqa: E402
from amplify_auth_server.database import create_engine, migrate  # noqa: E402
from amplify_auth_server.tables import tokens  # noqa: E402
from tests.support.server import Backend, ServerProcess, running_server  # noqa: E402
from tests.support.services import fresh_database  # noqa: E402

_ID = string.ascii_lowercase + string.digits
_CHUNK = 20_000


def _rows(start: int, count: int, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        rows.append(
            {
                "id": "tok_" + "".join(secrets.choice(_ID) for _ in range(16)),
                "token_hash": secrets.token_hex(32),
                "name": f"svc-{i % 1000:03d}-{i}",
                "scopes": ["read", f"team:{i % 100}"],
                "description": None,
                "metadata": None,
                # Spread over a year, so that order and filters have work to do.
                "created_at": now - timedelta(seconds=i * 31),
                # A third expire, from 30 days ago (expired) to a year ahead.
                "expires_at": None if i % 3 else now + timedelta(days=(i % 395) - 30),
                "revoked_at": now if i % 50 == 0 else None,
                "version": 1,
                "created_by": "bench",
            }
        )
    return rows


async def fill(url: str, count: int) -> None:
    engine = create_engine(url, pool_size=2)
    try:
        await migrate(engine)
        now = datetime.now(UTC)
        if url.startswith("postgresql"):
            await _copy(url, count, now)
        for start in range(0, count if url.startswith("sqlite") else 0, _CHUNK):
            async with engine.begin() as connection:
                await connection.execute(
                    tokens.insert(), _rows(start, min(_CHUNK, count - start), now)
                )
        # Statistics, as autovacuum (PostgreSQL) or an operator (SQLite) keeps
        # them: without any, the planner guesses, and pages a filter that
        # matches nothing by walking every row.
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def _copy(url: str, count: int, now: datetime) -> None:
    """The rows into PostgreSQL by COPY: inserts of a million rows outlast a busy
    machine's statement timeout."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql://", "postgres://"))
    try:
        columns = list(_rows(0, 1, now)[0])
        for start in range(0, count, _CHUNK):
            rows = _rows(start, min(_CHUNK, count - start), now)
            await connection.copy_records_to_table(
                "tokens",
                columns=columns,
                records=[
                    tuple(json.dumps(v) if isinstance(v, list) else v for v in row.values())
                    for row in rows
                ],
            )
    finally:
        await connection.close()


def timed(client: httpx.Client, path: str, repeat: int = 15) -> float:
    """Median milliseconds of ``GET path``."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(samples) * 1000


def walk(client: httpx.Client, pages: int) -> str | None:
    """The cursor after ``pages`` pages of 1000, newest first."""
    cursor = None
    for _ in range(pages):
        query = "/auth/tokens?limit=1000&status=all" + (f"&cursor={cursor}" if cursor else "")
        cursor = client.get(query).json()["next_cursor"]
        if cursor is None:
            break
    return cursor


def rss(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def miss_ms(server: ServerProcess, count: int = 300) -> float:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        samples = []
        for _ in range(count):
            body = {"token": generate_token()}
            started = time.perf_counter()
            client.post("/auth/validate", json=body).raise_for_status()
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def pages(name: str, url: str, directory: Path, count: int) -> None:
    started = time.perf_counter()
    asyncio.run(fill(url, count))
    print(f"\n{name}: {count} tokens written in {time.perf_counter() - started:.0f} s", flush=True)
    env = {"DATABASE_URL": url, "LOCAL_CACHE_SIZE": "0", "NEGATIVE_CACHE_TTL": "0"}
    with running_server(Backend(name, directory), env=env) as server, server.client() as client:
        results: list[tuple[str, float]] = []
        base = "/auth/tokens?limit=100&status=all"
        results.append(("first page", timed(client, base)))
        middle = walk(client, count // 2000)
        results.append(("middle page", timed(client, f"{base}&cursor={middle}")))
        last = walk(client, count // 1000 - 1) if count > 1000 else None
        if last is not None:
            results.append(("last page", timed(client, f"{base}&cursor={last}")))
        results.append(("status=active", timed(client, "/auth/tokens?limit=100")))
        results.append(("status=revoked", timed(client, "/auth/tokens?limit=100&status=revoked")))
        results.append(("status=expired", timed(client, "/auth/tokens?limit=100&status=expired")))
        results.append(("name prefix", timed(client, "/auth/tokens?limit=100&name=SVC-042-")))
        results.append(("scope", timed(client, "/auth/tokens?limit=100&scope=team:7")))
        results.append(
            (
                "expires_within_days=30",
                timed(client, "/auth/tokens?limit=100&expires_within_days=30"),
            )
        )
        before = rss(server)
        walk(client, 10)
        grown = rss(server) - before
        miss = miss_ms(server)
    with tempfile.TemporaryDirectory() as small:
        small_url = url if name == "postgres" else f"sqlite:///{Path(small) / 'small.db'}"
        if name == "postgres":
            with fresh_database() as small_url:
                asyncio.run(fill(small_url, 1000))
                env = {**env, "DATABASE_URL": small_url}
                with running_server(Backend(name, Path(small)), env=env) as server:
                    baseline = miss_ms(server)
        else:
            asyncio.run(fill(small_url, 1000))
            env = {**env, "DATABASE_URL": small_url}
            with running_server(Backend(name, Path(small)), env=env) as server:
                baseline = miss_ms(server)
    print("| request | median ms |")
    print("|---|---:|")
    for label, ms in results:
        print(f"| {label} | {ms:.1f} |")
    print(
        f"| validation miss at {count} / at 1000 tokens | {miss:.2f} / {baseline:.2f} "
        f"(ratio {miss / baseline:.2f}) |"
    )
    print(
        f"| server memory grown by paging 10,000 rows | {grown / 1024 / 1024:.1f} MiB |", flush=True
    )


# -- writes -------------------------------------------------------------------------


def api_creates(url: str, admin: str, seconds: int = 8) -> float:
    """Creates per second through the API from 32 concurrent clients (wrk: a Python
    client would be the bottleneck, httpx's pool costs more than the server)."""
    bodies = [json.dumps({"name": f"w-{i}", "scopes": ["a"]}) for i in range(50)]
    return wrk(
        url + "/auth/tokens",
        bodies,
        duration=seconds,
        connections=32,
        headers={"Authorization": f"Bearer {admin}"},
    )["rps"]


async def asyncpg_floor(database: str, count: int) -> float:
    """Two-row transactions per second, asyncpg straight to PostgreSQL, 32 connections."""
    import asyncpg

    dsn = database.replace("postgresql://", "postgres://")
    pool = await asyncpg.create_pool(dsn, min_size=32, max_size=32)
    now = datetime.now(UTC)
    slots = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with slots, pool.acquire() as connection, connection.transaction():
            token_id = "tok_" + secrets.token_hex(8)
            await connection.execute(
                "INSERT INTO tokens (id, token_hash, name, scopes, created_at, version) "
                "VALUES ($1, $2, $3, '[\"a\"]', $4, 1)",
                token_id, hash_token(generate_token()), f"floor-{i}", now,
            )  # fmt: skip
            await connection.execute(
                "INSERT INTO audit_log (at, actor_id, action, token_id, details) "
                "VALUES ($1, 'bench', 'create', $2, '{}')",
                now, token_id,
            )  # fmt: skip

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    rate = count / (time.perf_counter() - started)
    await pool.close()
    return rate


def observer(url: str, tokens_file: str) -> None:
    """In another process: cache every token, then report when the last is evicted."""
    import logging

    # The subscription's reconnections and resets, on stderr: a reset would
    # empty the cache without an event, and fake a fast eviction.
    logging.basicConfig(level=logging.INFO, format="observer %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    raw = Path(tokens_file).read_text().split()
    with AuthClient(url, cache_ttl=600) as sdk:
        # Subscribed first: the stream opens with a reset, which empties the
        # cache, so the tokens are cached only once it is live.
        assert sdk.validate(raw[0])
        while not sdk.cache_stats().subscribed:
            time.sleep(0.01)
        # A reconnection meanwhile opens with a reset too (seen once in a few
        # runs, after a minute of load: see the README); cache them again
        # until they are all held, so that the revoke alone empties the cache.
        for _ in range(5):
            assert all(sdk.validate(token) for token in raw)
            if sdk.cache_stats().size >= len(raw):
                break
        stats = sdk.cache_stats()
        print(f"ready {stats.size} {stats.events} {stats.resets}", flush=True)
        # Watched without asking the server: an evicted token's next
        # validation would be a request, and 10,000 of them would be timed.
        while sdk.cache_stats().size:
            time.sleep(0.001)
        stats = sdk.cache_stats()
        print(f"evicted {time.time()} {stats.events} {stats.resets}", flush=True)


def writes(creates: int) -> None:
    print("| writes | figure |")
    print("|---|---:|")
    with tempfile.TemporaryDirectory() as directory, fresh_database() as database:
        backend = Backend("postgres", Path(directory), database)
        with running_server(backend) as server:
            assert server.admin_token is not None
            api = api_creates(server.base_url, server.admin_token)
            floor = asyncio.run(asyncpg_floor(database, creates))
            api_again = api_creates(server.base_url, server.admin_token)
        print(f"| creates/s through the API, PostgreSQL, 32 clients | {api:.0f}, {api_again:.0f} |")
        print(f"| two-row transactions/s, asyncpg, 32 connections | {floor:.0f} |")
        print(f"| ratio to the floor | {statistics.mean([api, api_again]) / floor:.2f} |")
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Backend("embedded", Path(directory))) as server,
    ):
        assert server.admin_token is not None
        embedded = api_creates(server.base_url, server.admin_token)
        print(f"| creates/s through the API, embedded, 32 clients | {embedded:.0f} |")
        bulk(server, 10_000)


def creates(seconds: int) -> None:
    """Creates/s through the API, embedded and on PostgreSQL, for the server on PYTHONPATH."""
    tree = os.environ.get("PYTHONPATH", str(ROOT))
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Backend("embedded", Path(directory))) as server,
    ):
        assert server.admin_token is not None
        embedded = api_creates(server.base_url, server.admin_token, seconds)
    with (
        tempfile.TemporaryDirectory() as directory,
        fresh_database() as database,
        running_server(Backend("postgres", Path(directory), database)) as server,
    ):
        assert server.admin_token is not None
        postgres = api_creates(server.base_url, server.admin_token, seconds)
    print(f"| {tree} | {embedded:.0f} | {postgres:.0f} |", flush=True)


def beside(baseline: str, seconds: int, rounds: int) -> None:
    """Creates/s embedded, this tree's server and ``baseline``'s served at the same time,
    each driven by its own 32 clients, ``rounds`` times.

    On this machine the speed of everything drifts by a factor of two within
    minutes; two runs one after the other compare two moments as much as
    two builds. Run together, both see the same moment: the ratio of their
    rates holds where the rates themselves do not (each is about half what
    it makes alone, the two sharing two cores).
    """
    print("| round | baseline creates/s | this tree creates/s | ratio |")
    print("|---|---:|---:|---:|")
    ratios = []
    for round_ in range(1, rounds + 1):
        with (
            tempfile.TemporaryDirectory() as here,
            tempfile.TemporaryDirectory() as there,
            running_server(Backend("embedded", Path(here)), env={"PYTHONPATH": str(ROOT)}) as mine,
            running_server(
                Backend("embedded", Path(there)), env={"PYTHONPATH": baseline}
            ) as theirs,
            ThreadPoolExecutor(2) as pool,
        ):
            assert mine.admin_token is not None
            assert theirs.admin_token is not None
            ours = pool.submit(api_creates, mine.base_url, mine.admin_token, seconds)
            base = pool.submit(api_creates, theirs.base_url, theirs.admin_token, seconds)
            rate, base_rate = ours.result(), base.result()
        ratios.append(rate / base_rate)
        print(f"| {round_} | {base_rate:.0f} | {rate:.0f} | {ratios[-1]:.2f} |", flush=True)
    print(f"| median | | | **{statistics.median(ratios):.2f}** |")


def turns(baseline: str, seconds: int, rounds: int) -> None:
    """Creates/s embedded, this tree's server and ``baseline``'s both up, each driven
    alone by 32 clients in turn (ABBA...), ``rounds`` pairs, with the largest size
    its write-ahead log reached.

    :func:`beside` shares the two cores between both servers, which then
    compete for CPU: it compares what a create costs. Alone, a server is
    held back as much by how long its single writer keeps 32 clients
    waiting (a batch, then their answers and next requests, in lockstep)
    as by CPU: what ``writes`` measures, and what this compares, in turn
    so that each pair sees nearly the same moment of a drifting machine.
    """
    print("| round | baseline creates/s | this tree creates/s | ratio |")
    print("|---|---:|---:|---:|")
    ratios, logs = [], {"baseline": 0, "this tree": 0}
    with (
        tempfile.TemporaryDirectory() as here,
        tempfile.TemporaryDirectory() as there,
        running_server(Backend("embedded", Path(here)), env={"PYTHONPATH": str(ROOT)}) as mine,
        running_server(Backend("embedded", Path(there)), env={"PYTHONPATH": baseline}) as theirs,
    ):
        servers = {"this tree": (mine, Path(here)), "baseline": (theirs, Path(there))}

        def drive(name: str) -> float:
            server, directory = servers[name]
            assert server.admin_token is not None
            rate = api_creates(server.base_url, server.admin_token, seconds)
            log = directory / "amplify_auth.db-wal"
            logs[name] = max(logs[name], log.stat().st_size if log.exists() else 0)
            return rate

        drive("this tree"), drive("baseline")  # warm both
        for round_ in range(1, rounds + 1):
            order = ["this tree", "baseline"] if round_ % 2 else ["baseline", "this tree"]
            rates = {name: drive(name) for name in order}
            ratios.append(rates["this tree"] / rates["baseline"])
            print(
                f"| {round_} | {rates['baseline']:.0f} | {rates['this tree']:.0f} "
                f"| {ratios[-1]:.2f} |",
                flush=True,
            )
    print(f"| median | | | **{statistics.median(ratios):.2f}** |")
    print(
        f"| largest WAL | {logs['baseline'] / 2**20:.1f} MiB "
        f"| {logs['this tree'] / 2**20:.1f} MiB | |"
    )


def bulk(server: ServerProcess, count: int) -> None:
    with server.client() as admin:
        raw = []
        for start in range(0, count, 1000):
            made = asyncio.run(_mint(server, start, min(1000, count - start)))
            raw += made
        with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as handle:
            handle.write("\n".join(raw))
        watcher = subprocess.Popen(
            [sys.executable, __file__, "observe", server.base_url, handle.name],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        word, cached, events_before, resets_before = watcher.stdout.readline().split()
        assert (word, int(cached)) == ("ready", count), (word, cached)
        started = time.time()
        done = admin.post("/auth/tokens/revoke", json={"filter": {"name": "bulk-"}}, timeout=120)
        returned = time.time()
        assert done.json()["revoked_count"] == count, done.text
        _, at, events_after, resets_after = watcher.stdout.readline().split()
        evicted = float(at)
        events = int(events_after) - int(events_before)
        resets = int(resets_after) - int(resets_before)
        watcher.wait()
    print(f"| {count} revoked by one filter: to the call's return | {returned - started:.2f} s |")
    print(
        f"| ... to the last eviction in a subscribed SDK ({events} events, {resets} resets) "
        f"| {evicted - started:.2f} s |",
        flush=True,
    )


async def _mint(server: ServerProcess, start: int, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as c:
        slots = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with slots:
                r = await c.post("/auth/tokens", json={"name": f"bulk-{i}", "scopes": ["a"]})
                return str(r.json()["token"])

        return await asyncio.gather(*(one(start + i) for i in range(count)))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "observe":
        observer(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["pages", "writes", "creates", "beside", "turns"],
        default="pages",
    )
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--creates", type=int, default=4000)
    parser.add_argument("--seconds", type=int, default=6, help="each creates run (creates)")
    parser.add_argument("--baseline", help="beside, turns: a checkout of the build to compare with")
    parser.add_argument("--rounds", type=int, default=5, help="beside, turns: how many times")
    args = parser.parse_args()
    if args.mode in ("beside", "turns"):
        if not args.baseline:
            parser.error(f"{args.mode} needs --baseline, a checkout (git worktree add)")
        (beside if args.mode == "beside" else turns)(args.baseline, args.seconds, args.rounds)
        return
    if args.mode == "creates":
        creates(args.seconds)
        return
    if args.mode == "writes":
        writes(args.creates)
        return
    if args.backend in ("postgres", "both"):
        with tempfile.TemporaryDirectory() as directory, fresh_database() as url:
            pages("postgres", url, Path(directory), args.tokens)
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            pages("sqlite", f"sqlite:///{Path(directory) / 'big.db'}", Path(directory), args.tokens)


if __name__ == "__main__":
    main()
