"""How long a revoked token stays accepted by a cached SDK client in another process.

    .venv/bin/python benchmarks/revocation_propagation.py [--count 200] [--setup both]

Measures, for each revocation, the time from the moment the revoke call
returns (in this process, the driver) to the moment an ``AuthClient`` in
another process (the observer, this script started again with ``observe``)
first answers ``revoked`` for that token. Both processes read
``time.time()`` on the same machine, so the two stamps share a clock.

Two ways of keeping the observer's cache honest, side by side:

* **subscribed** (the default, ``subscribe_revocations`` on): the observer
  caches the token with a long ``cache_ttl`` (300 s), so that only the
  event stream can evict it, then polls ``validate`` every ``--poll``
  seconds. One revocation at a time: the driver revokes only once the
  observer says it holds the token cached and is polling, and waits for
  the observer's report before the next, so each sample is independent.
  Besides the answer, the observer reports when its subscription applied
  the event (``cache_stats().last_event_at``).
* **unsubscribed** (``subscribe_revocations=False``): staleness is bounded
  by ``cache_ttl`` alone, so a short one (``--ttl``, 5 s) keeps the run in
  seconds. The observer caches all tokens at once; the driver revokes token
  ``i`` at ``i / count`` of its entry's life (each call sent at its moment,
  from a thread pool, not after the previous one returned), so that the
  revocations fall evenly over the entries' lifetime, as real revocations
  fall at random moments of it. The observer polls every token until it
  answers ``revoked``: the delay is what remained of that entry's TTL.

Setups (``--setup``):

* ``replicas``: two server processes on one fresh PostgreSQL database (on
  the shared server, dropped afterwards) and one private ``redis-server`` on
  a free port. The observer talks to replica 1, revocations go through
  replica 2: the event crosses Redis.
* ``embedded``: the default server (SQLite, events in process memory), one
  process that both the observer and the driver talk to.

For scale, the table also gives the p50 of a plain ``POST /auth/validate``
round trip to the observer's server and of the revoke call itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amplify_auth_client import AuthClient, generate_token  # noqa: E402
from tests.support.server import Backend, ServerProcess, running_server  # noqa: E402
from tests.support.services import RedisNamespace, fresh_database, private_redis  # noqa: E402

#: How long the observer waits for one token to turn ``revoked`` before giving up.
GIVE_UP = 30.0
#: The end of the TTL left for the revoke call itself, when unsubscribed (at most).
UNSUBSCRIBED_SLACK = 0.25
#: Server log lines worth reporting: trouble, and outbox replays (each a duplicate event).
SUSPICIOUS = ("WARNING", "ERROR", "Traceback", "reconnecting", "replayed")


# -- the observer (a process of its own) --------------------------------------


def observe(argv: list[str]) -> None:
    """The observer: reads commands on stdin, answers one JSON line each on stdout."""
    parser = argparse.ArgumentParser(prog="revocation_propagation.py observe")
    parser.add_argument("url")
    parser.add_argument("--subscribe", action="store_true")
    parser.add_argument("--ttl", type=float, required=True)
    parser.add_argument("--poll", type=float, required=True)
    args = parser.parse_args(argv)
    client = AuthClient(args.url, cache_ttl=args.ttl, subscribe_revocations=args.subscribe)

    def reply(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "start":
            # The subscription starts with the first request to the server,
            # and its first message (a reset) drops the cache: wait for it
            # to be live before caching anything.
            client.validate(rest)
            deadline = time.monotonic() + 30
            while args.subscribe and client.cache_stats().subscription != "live":
                if time.monotonic() > deadline:
                    reply(error=f"not live: {client.cache_stats()}")
                    return
                time.sleep(0.01)  # polling a state that has no event to wait on
            reply(state=client.cache_stats().subscription)
        elif command == "watch":
            token = rest
            first, second = client.validate(token), client.validate(token)
            if not (first.valid and second.valid and second.cached):
                reply(error=f"token not cached as valid: {first}, {second}")
                return
            before = client.cache_stats()
            reply(watching=True)
            deadline = time.monotonic() + GIVE_UP
            # The entry lives 300 s: a "valid" that is not from the cache
            # means an event evicted it and the server said "valid" again,
            # which is then cached for 300 s.
            refetched_valid: list[float] = []
            while True:
                result = client.validate(token)
                if result.reason == "revoked":
                    seen = time.time()
                    break
                if not result.cached:
                    refetched_valid.append(time.time())
                if time.monotonic() > deadline:
                    reply(error=f"still {result} after {GIVE_UP}s: {client.cache_stats()}")
                    return
                time.sleep(args.poll)
            after = client.cache_stats()
            reply(
                seen=seen,
                applied=after.last_event_at.timestamp() if after.last_event_at else None,
                events=after.events - before.events,
                resets=after.resets - before.resets,
                cached=result.cached,
                refetched_valid=refetched_valid,
            )
        elif command == "cache":
            tokens = rest.split()
            cached_at = []
            for token in tokens:
                result = client.validate(token)
                cached_at.append(time.time())
                if not result.valid:
                    reply(error=f"token not valid: {result}")
                    return
            reply(cached_at=cached_at)
        elif command == "poll":
            # Every token, round robin, until each one answers revoked.
            waiting = dict(enumerate(rest.split()))
            seen_at: dict[int, float] = {}
            deadline = time.monotonic() + 3 * args.ttl + GIVE_UP
            while waiting:
                for index, token in list(waiting.items()):
                    if client.validate(token).reason == "revoked":
                        seen_at[index] = time.time()
                        del waiting[index]
                if time.monotonic() > deadline:
                    reply(error=f"{len(waiting)} tokens still not revoked")
                    return
                time.sleep(args.poll)
            reply(seen=[seen_at[i] for i in range(len(seen_at))])
        elif command == "stats":
            stats = client.cache_stats()
            reply(subscription=stats.subscription, events=stats.events, resets=stats.resets)
        elif command == "quit":
            break
    client.close()


class Observer:
    """The driver's handle on an observer process: one command, one JSON answer."""

    def __init__(self, url: str, *, subscribe: bool, ttl: float, poll: float) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "observe", url]
        command += ["--ttl", str(ttl), "--poll", str(poll)]
        if subscribe:
            command.append("--subscribe")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the observer exited ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"observer: {answer['error']}")
        return answer

    def ask(self, line: str) -> dict[str, Any]:
        self.send(line)
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                # Still polling (the driver failed mid-sample): end it.
                self.process.kill()
                self.process.wait()


# -- the driver ---------------------------------------------------------------


def make_tokens(admin: AuthClient, count: int) -> list[tuple[str, str]]:
    created = (admin.create_token(f"bench-{i}", ["read"]) for i in range(count))
    return [(c.token, c.token_id) for c in created]


def subscribed_run(
    observed: str, revoking: ServerProcess, count: int, poll: float
) -> dict[str, Any]:
    """One revocation at a time; delays from each revoke call's return, in seconds."""
    with AuthClient(
        revoking.base_url, admin_token=revoking.admin_token, subscribe_revocations=False
    ) as admin:
        tokens = make_tokens(admin, count)
        observer = Observer(observed, subscribe=True, ttl=300.0, poll=poll)
        try:
            observer.ask(f"start {tokens[0][0]}")
            answered, applied, from_call, calls, strays = [], [], [], [], []
            for index, (token, token_id) in enumerate(tokens):
                observer.ask(f"watch {token}")
                called = time.time()
                admin.revoke_token(token_id)
                returned = time.time()
                report = observer.receive()
                calls.append(returned - called)
                answered.append(report["seen"] - returned)
                from_call.append(report["seen"] - called)
                if report["applied"] is not None:
                    applied.append(report["applied"] - returned)
                if (
                    report["events"] != 1
                    or report["resets"]
                    or report["cached"]
                    or report["refetched_valid"]
                ):
                    strays.append({"sample": index, "answered_ms": answered[-1] * 1e3, **report})
            stats = observer.ask("stats")
        finally:
            observer.close()
    return {
        "answered": answered,
        "applied": applied,
        "from_call": from_call,
        "revoke": calls,
        "strays": strays,
        "stats": stats,
    }


def unsubscribed_run(
    observed: str, revoking: ServerProcess, count: int, ttl: float, poll: float
) -> dict[str, Any]:
    """All tokens cached at once, revoked evenly over one TTL; delays from each return."""
    with AuthClient(
        revoking.base_url, admin_token=revoking.admin_token, subscribe_revocations=False
    ) as admin:
        tokens = make_tokens(admin, count)
        observer = Observer(observed, subscribe=False, ttl=ttl, poll=poll)
        try:
            state = observer.ask(f"start {tokens[0][0]}")["state"]
            assert state == "off", state
            cached_at = observer.ask("cache " + " ".join(t for t, _ in tokens))["cached_at"]
            observer.send("poll " + " ".join(t for t, _ in tokens))

            def revoke(token_id: str) -> tuple[float, float]:
                called = time.time()
                admin.revoke_token(token_id)
                return called, time.time()

            # Each revocation is sent at its moment, whether or not the one
            # before has returned (a slow call must not push the next ones
            # past their entries' end); the last UNSUBSCRIBED_SLACK of the
            # TTL is left for the call itself.
            span = ttl - min(UNSUBSCRIBED_SLACK, ttl / 10)
            with ThreadPoolExecutor(8) as pool:
                futures = []
                for index, (_, token_id) in enumerate(tokens):
                    # Scheduling, not synchronisation: revoke at i/count of
                    # the entry's lifetime.
                    due = cached_at[index] + span * index / count
                    time.sleep(max(0.0, due - time.time()))
                    futures.append(pool.submit(revoke, token_id))
                calls = [future.result() for future in futures]
            seen = observer.receive()["seen"]
        finally:
            observer.close()
    returned = [r for _, r in calls]
    return {
        "answered": [s - r for s, r in zip(seen, returned, strict=True)],
        "revoke": [r - c for c, r in calls],
        # Revoked after its entry ran out: the observer may have cached
        # "valid" again, for a whole new TTL.
        "expired_first": sum(r > c + ttl for r, c in zip(returned, cached_at, strict=True)),
    }


def validate_p50(url: str, token: str, calls: int = 500) -> float:
    """The p50 of one plain POST /auth/validate round trip, in seconds."""
    body = {"token": token, "required_scopes": []}
    samples = []
    with httpx.Client(base_url=url) as raw:
        for _ in range(calls):
            started = time.perf_counter()
            raw.post("/auth/validate", json=body).raise_for_status()
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@contextmanager
def replicas(work: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one fresh PostgreSQL database and one private redis-server."""
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database())
        redis_server = stack.enter_context(private_redis())
        namespace = RedisNamespace(redis_server.url, f"amplify-bench-{secrets.token_hex(4)}")
        backend = Backend("replicas", work, database_url=database, redis=namespace)
        admin = generate_token()
        first = stack.enter_context(running_server(backend, admin_token=admin))
        second = stack.enter_context(running_server(backend, admin_token=admin))
        yield first, second


@contextmanager
def embedded(work: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with running_server(Backend("embedded", work)) as server:
        yield server, server


def percentiles(samples: list[float]) -> list[float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    return [at(0.5), at(0.9), at(0.99), ordered[-1]]


def log_findings(servers: list[ServerProcess]) -> list[str]:
    found = []
    for server in servers:
        for line in server.log().splitlines():
            if any(word in line for word in SUSPICIOUS):
                found.append(f"{server.port}: {line}")
    return found


def main() -> None:
    if sys.argv[1:2] == ["observe"]:
        observe(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="revocations per mode")
    parser.add_argument(
        "--setup", choices=["replicas", "embedded", "both"], default="both", help="what to run"
    )
    parser.add_argument("--ttl", type=float, default=5.0, help="cache_ttl when unsubscribed")
    parser.add_argument(
        "--poll", type=float, default=0.0002, help="observer's poll interval, subscribed"
    )
    parser.add_argument(
        "--poll-unsubscribed",
        type=float,
        default=0.002,
        help="observer's pause between rounds over every token, unsubscribed",
    )
    parser.add_argument(
        "--skip-unsubscribed", action="store_true", help="only the subscribed measurement"
    )
    args = parser.parse_args()

    setups = ["replicas", "embedded"] if args.setup == "both" else [args.setup]
    rows: list[tuple[str, str, list[float]]] = []
    notes: list[str] = []
    started_load = os.getloadavg()
    for setup in setups:
        start = replicas if setup == "replicas" else embedded
        with (
            tempfile.TemporaryDirectory(prefix=f"amplify-propagation-{setup}-") as work,
            start(Path(work)) as (observed, revoking),
        ):
            with AuthClient(
                revoking.base_url, admin_token=revoking.admin_token, subscribe_revocations=False
            ) as admin:
                probe = admin.create_token("probe", ["read"]).token
            round_trip = validate_p50(observed.base_url, probe)

            result = subscribed_run(observed.base_url, revoking, args.count, args.poll)
            rows.append((setup, "subscribed: answers revoked", result["answered"]))
            rows.append((setup, "subscribed: event applied", result["applied"]))
            rows.append(
                (setup, "subscribed: answers revoked, from the call's start", result["from_call"])
            )
            if not args.skip_unsubscribed:
                plain = unsubscribed_run(
                    observed.base_url, revoking, args.count, args.ttl, args.poll_unsubscribed
                )
                rows.append((setup, f"unsubscribed, cache_ttl={args.ttl:g}s", plain["answered"]))
                notes.append(
                    f"{setup} unsubscribed: revoke call p50 "
                    f"{statistics.median(plain['revoke']) * 1e3:.2f} ms, max "
                    f"{max(plain['revoke']) * 1e3:.2f} ms; tokens revoked only after their "
                    f"cache entry had run out: {plain['expired_first']}"
                )
            notes.append(
                f"{setup}: validate round trip p50 {round_trip * 1e3:.2f} ms; revoke call "
                f"p50 {statistics.median(result['revoke']) * 1e3:.2f} ms, max "
                f"{max(result['revoke']) * 1e3:.2f} ms; observer's "
                f"subscription at the end: {result['stats']}; samples with other than one "
                f"event, a reset, a cached answer or a fresh 'valid' after an eviction: "
                f"{len(result['strays'])}"
            )
            notes += [f"{setup} odd sample: {stray}" for stray in result["strays"][:10]]
            servers = [observed] if observed is revoking else [observed, revoking]
            notes += [f"{setup} log: {line}" for line in log_findings(servers)]

    load = os.getloadavg()
    print(
        f"\n{args.count} revocations per row; 1-minute load average {started_load[0]:.2f} "
        f"before, {load[0]:.2f} after\n"
    )
    print("| setup | client | n | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for setup, name, samples in rows:
        figures = " | ".join(f"{value * 1e3:.2f}" for value in percentiles(samples))
        print(f"| {setup} | {name} | {len(samples)} | {figures} |")
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
