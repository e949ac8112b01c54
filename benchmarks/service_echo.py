"""What authentication costs a service: ``POST /echo`` with and without it, side by side.

    .venv/bin/python benchmarks/service_echo.py [--duration 8] [--rounds 3]

Starts an auth server (embedded), mints a token with ``read``, then serves
three apps with the same uvicorn options (``echo_apps.py``: one process,
uvloop, httptools, no access log) and drives each with ``wrk -t2 -c64``,
alternating round by round:

* **bare**: the example's echo handler in a bare FastAPI app, no token;
* **example**: the example service (a ``StatelessService``), authenticated;
* **dependency**: the bare route behind ``Depends(RequireScopes("read"))``;
* **requires**: the same behind ``requires("read")`` (one dependency, not two);
* **middleware**: the bare app behind ``AuthMiddleware`` (pure ASGI).

Every authenticated request is a cache hit after the first (the SDK's
default 30 s cache, its revocation subscription live), as in production.
Prints the medians and the ratios to bare (goal: >= 0.95x, p99 within 10 %).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from server_validate import create_token, serve, server_env, wrk  # noqa: E402

from amplify_auth_client import generate_token  # noqa: E402
from tests.support.services import free_port  # noqa: E402

APPS = ("bare", "example", "dependency", "requires", "middleware")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="amplify-echo-"))
    admin = generate_token()
    body = json.dumps({"text": "hello", "n": [1, 2, 3]})
    with ExitStack() as stack:
        auth_port = free_port()
        auth = stack.enter_context(
            serve(
                [sys.executable, "-m", "amplify_auth_server", "serve", "--port", str(auth_port)],
                server_env({"AUTH_ADMIN_TOKEN": admin}),
                work,
                auth_port,
            )
        )
        token = create_token(auth, admin, ["read"])
        urls = {}
        for name in APPS:
            port = free_port()
            urls[name] = stack.enter_context(
                serve(
                    [sys.executable, str(HERE / "echo_apps.py"), name, str(port)],
                    server_env({"AUTH_SERVICE_URL": auth}),
                    work,
                    port,
                )
            )
        headers = {"Authorization": f"Bearer {token}"}
        for url in urls.values():  # warm: the one miss, and the subscription started
            response = httpx.post(url + "/echo", content=body, headers=headers)
            assert response.status_code == 200, response.text
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in APPS}
        for _ in range(args.rounds):
            for name in APPS:
                runs[name].append(
                    wrk(
                        urls[name] + "/echo",
                        [body],
                        duration=args.duration,
                        connections=args.connections,
                        headers=headers if name != "bare" else None,
                    )
                )
                print(f"{name}: {runs[name][-1]['rps']:.0f} req/s", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    med = {
        n: {k: statistics.median(r[k] for r in runs[n]) for k in ("rps", "p50", "p99")}
        for n in APPS
    }
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.duration}s, median of {args.rounds} "
        "alternating rounds, one uvicorn process each\n"
    )
    print("| app | req/s | ratio to bare | p50 ms | p99 ms | p99 / bare p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    bare = med["bare"]
    for name in APPS:
        m = med[name]
        print(
            f"| {name} | {m['rps']:.0f} | {m['rps'] / bare['rps']:.2f} | {m['p50']:.2f} "
            f"| {m['p99']:.2f} | {m['p99'] / bare['p99']:.2f} |"
        )
    print(
        "\nper round (req/s): "
        + "; ".join(f"{n} " + " ".join(f"{r['rps']:.0f}" for r in runs[n]) for n in APPS)
    )


if __name__ == "__main__":
    main()
