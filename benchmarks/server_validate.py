"""Throughput and latency of POST /auth/validate, as ratios to a bare FastAPI endpoint.

    .venv/bin/python benchmarks/server_validate.py [--duration 10] [--connections 64]

Starts each server on loopback, drives it with wrk (two threads, keep-alive,
``--latency``) and prints a Markdown table. Every scenario runs beside the
bare endpoint in the same run, alternating, because absolute numbers drift
from run to run on a shared machine; the ratio is the figure to read.

Scenarios (the PostgreSQL + Redis ones need the machine's shared servers):

* bare: FastAPI returning constant JSON (the ceiling).
* cached: a valid token, warm local cache.
* garbage: a malformed token (rejected before any lookup).
* unknown: a well-formed unknown token (negative cache), counted by the throttle.
* throttled: the same from a client past its budget: 429 (see security.md).
* sqlite: every request goes to SQLite (local cache off), over 500 tokens.
* redis: every request goes to Redis (local cache off), over 500 tokens.
* postgres: every request goes to PostgreSQL (no Redis, local cache off),
  over 500 tokens.

``--usage`` runs one comparison instead: the cached scenario with usage
counting on (the default) and off (``USAGE_COUNTING=false``), alternating
in one run, and prints the ratio: the hot path's cost of counting a use.

``--beside TREE`` runs another: the cached scenario on this tree's server
and on the checkout ``TREE``'s (``git worktree add``), both served and
driven at the same time, round by round: the ratio of two builds at the
same moment of a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amplify_auth_client import generate_token  # noqa: E402
from tests.support.services import free_port, fresh_database, redis_namespace  # noqa: E402

# Cycles through the bodies, so that a scenario can spread its requests over
# many tokens (with one token, concurrent misses coalesce into one lookup).
LUA = """
local bodies = {%s}
local headers = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, headers, bodies[i])
end
"""
POOL = 500


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url + "/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@contextmanager
def serve(command: list[str], env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process)
        yield url
    finally:
        process.terminate()
        process.wait()


def server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "AUTH_ADMIN_TOKEN")
    }
    env.update({"LOG_LEVEL": "warning"}, **extra)
    return env


def wrk(
    url: str,
    bodies: list[str],
    *,
    duration: int,
    connections: int,
    headers: dict[str, str] | None = None,
    refusals: bool = False,
) -> dict[str, float]:
    """wrk's requests/s and p50/p99 (ms) for POSTs of ``bodies`` in turn, with ``headers``;
    ``refusals``: non-2xx answers are what is measured, not an error."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA
            % (
                ", ".join(f"[[{body}]]" for body in bodies),
                ", ".join(f'["{name}"] = "{value}"' for name, value in sent.items()),
            )
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors and not refusals:
        raise RuntimeError(f"{errors.group(1)} error responses from {url}:\n{out}")
    return {"rps": rps, "p50": percentile("50"), "p99": percentile("99")}


def create_token(url: str, admin: str, scopes: list[str]) -> str:
    response = httpx.post(
        url + "/auth/tokens",
        json={"name": "bench", "scopes": scopes},
        headers={"Authorization": f"Bearer {admin}"},
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


async def create_tokens(url: str, admin: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post("/auth/tokens", json={"name": f"b{i}", "scopes": ["read"]})
                for i in range(count)
            )
        )
    return [r.raise_for_status().json()["token"] for r in responses]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternations per scenario")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--usage", action="store_true", help="only: cached, usage counting on vs off"
    )
    parser.add_argument(
        "--beside",
        metavar="TREE",
        help="only: cached, this tree and the checkout TREE served at once, side by side",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="amplify-bench-"))
    admin = generate_token()
    _ADMIN.append(admin)
    python = sys.executable

    with ExitStack() as stack:
        bare_port = free_port()
        bare = stack.enter_context(
            serve(
                [python, str(ROOT / "benchmarks/bare_app.py"), str(bare_port)],
                server_env({}),
                work,
                bare_port,
            )
        )
        bare_url = bare + "/constant"

        def ours(name: str, extra: dict[str, str]) -> str:
            port = free_port()
            env = server_env({"AUTH_ADMIN_TOKEN": admin, **extra})
            directory = work / name
            directory.mkdir()
            return stack.enter_context(
                serve(
                    [python, "-m", "amplify_auth_server", "serve", "--port", str(port)],
                    env,
                    directory,
                    port,
                )
            )

        if args.usage:
            _usage(args, ours)
            return
        if args.beside:
            _beside(args, ours)
            return

        # Budgets no run reaches: garbage and unknown measure a failure that is
        # counted (what each costs now), not the 429 past the budget; that is
        # "throttled", a client past its budget of one.
        unthrottled = {
            "THROTTLE_VALIDATION_FAILURES": "1000000000/hour",
            "THROTTLE_MALFORMED_VALIDATIONS": "1000000000/hour",
        }
        embedded = ours("embedded", unthrottled)
        throttled = ours("throttled", {"THROTTLE_VALIDATION_FAILURES": "1/hour"})
        sqlite_only = ours("sqlite", {"LOCAL_CACHE_SIZE": "0"})
        targets = {
            "cached": (embedded, "token"),
            "garbage": (embedded, "garbage"),
            "unknown": (embedded, "unknown"),
            "throttled": (throttled, "unknown"),
            "sqlite": (sqlite_only, "pool"),
        }
        if not args.skip_postgres:
            database = stack.enter_context(fresh_database())
            namespace = stack.enter_context(redis_namespace())
            redis_env = {
                "DATABASE_URL": database,
                "REDIS_URL": namespace.url,
                "REDIS_KEY_PREFIX": namespace.prefix,
            }
            pg_cached = ours("pg-cached", redis_env)
            pg_redis = ours("pg-redis", {**redis_env, "LOCAL_CACHE_SIZE": "0"})
            pg_only = ours("pg-only", {"DATABASE_URL": database, "LOCAL_CACHE_SIZE": "0"})
            targets.update(
                {
                    "cached (postgres+redis)": (pg_cached, "token"),
                    "redis": (pg_redis, "pool"),
                    "postgres": (pg_only, "pool"),
                }
            )

        bodies: dict[str, list[str]] = {}
        for name, (url, kind) in targets.items():
            if kind == "token":
                tokens = [create_token(url, admin, ["read", "write"])]
            elif kind == "pool":
                tokens = asyncio.run(create_tokens(url, admin, POOL))
            elif kind == "unknown":
                tokens = [generate_token()]
            else:
                tokens = ["amp_live_garbage"]
            bodies[name] = [json.dumps({"token": t, "required_scopes": ["read"]}) for t in tokens]
            httpx.post(url + "/auth/validate", content=bodies[name][0])  # warm

        rows = []
        for name, (url, _) in targets.items():
            bare_runs, our_runs = [], []
            for _ in range(args.rounds):
                bare_runs.append(
                    wrk(
                        bare_url, bodies[name], duration=args.duration, connections=args.connections
                    )
                )
                our_runs.append(
                    wrk(
                        url + "/auth/validate",
                        bodies[name],
                        duration=args.duration,
                        connections=args.connections,
                        refusals=name == "throttled",
                    )
                )
            b = {k: statistics.median(r[k] for r in bare_runs) for k in ("rps", "p50", "p99")}
            o = {k: statistics.median(r[k] for r in our_runs) for k in ("rps", "p50", "p99")}
            rows.append((name, b, o))
            print(f"{name}: {o['rps']:.0f} req/s vs bare {b['rps']:.0f}", file=sys.stderr)

    shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        "alternating rounds, one uvicorn process each\n"
    )
    print("| scenario | req/s | bare req/s | ratio | p50 ms | p99 ms | bare p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, b, o in rows:
        print(
            f"| {name} | {o['rps']:.0f} | {b['rps']:.0f} | {o['rps'] / b['rps']:.2f} "
            f"| {o['p50']:.2f} | {o['p99']:.2f} | {b['p99']:.2f} |"
        )


def _usage(args: argparse.Namespace, ours: Callable[[str, dict[str, str]], str]) -> None:
    """Cached validations, usage counting on and off, alternating: their ratio."""
    servers = {
        "usage counting on": ours("usage-on", {}),
        "usage counting off": ours("usage-off", {"USAGE_COUNTING": "false"}),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    bodies = {}
    for name, url in servers.items():
        token = create_token(url, _ADMIN[0], ["read", "write"])
        bodies[name] = [json.dumps({"token": token, "required_scopes": ["read"]})]
        httpx.post(url + "/auth/validate", content=bodies[name][0])  # warm
    for _ in range(args.rounds):
        for name, url in servers.items():
            runs[name].append(
                wrk(
                    url + "/auth/validate",
                    bodies[name],
                    duration=args.duration,
                    connections=args.connections,
                )
            )
    medians = {
        name: {k: statistics.median(r[k] for r in done) for k in ("rps", "p50", "p99")}
        for name, done in runs.items()
    }
    off = medians["usage counting off"]["rps"]
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        "alternating rounds, one uvicorn process each\n"
    )
    print("| cached validation | req/s | ratio to off | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, m in medians.items():
        print(
            f"| {name} | {m['rps']:.0f} | {m['rps'] / off:.3f} | {m['p50']:.2f} | {m['p99']:.2f} |"
        )


def _beside(args: argparse.Namespace, ours: Callable[[str, dict[str, str]], str]) -> None:
    """Cached validations on this tree's server and the baseline's, both served and
    driven at the same time: the ratio of their rates, round by round.

    This machine's speed drifts by a factor of two within minutes: two runs
    one after the other compare two moments as much as two builds. Driven
    together, both see the same moment (each at about half its rate alone).
    """
    servers = {
        "this tree": ours("mine", {"PYTHONPATH": str(ROOT)}),
        "baseline": ours("baseline", {"PYTHONPATH": args.beside}),
    }
    bodies = {}
    for name, url in servers.items():
        token = create_token(url, _ADMIN[0], ["read", "write"])
        bodies[name] = [json.dumps({"token": token, "required_scopes": ["read"]})]
        httpx.post(url + "/auth/validate", content=bodies[name][0])  # warm
    print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s on each server at once\n")
    print("| round | baseline req/s | this tree req/s | ratio | baseline p99 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    ratios = []
    with ThreadPoolExecutor(len(servers)) as pool:
        for round_ in range(1, args.rounds + 1):
            runs = {
                name: pool.submit(
                    wrk,
                    url + "/auth/validate",
                    bodies[name],
                    duration=args.duration,
                    connections=args.connections,
                )
                for name, url in servers.items()
            }
            mine, base = runs["this tree"].result(), runs["baseline"].result()
            ratios.append(mine["rps"] / base["rps"])
            print(
                f"| {round_} | {base['rps']:.0f} | {mine['rps']:.0f} | {ratios[-1]:.2f} "
                f"| {base['p99']:.2f} | {mine['p99']:.2f} |",
                flush=True,
            )
    print(f"| median | | | **{statistics.median(ratios):.2f}** | | |")


#: The admin token of the run, set by main (the servers register it at start-up).
_ADMIN: list[str] = []


if __name__ == "__main__":
    main()
