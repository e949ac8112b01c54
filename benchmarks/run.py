"""Run every benchmark as benchmarks/README.md records it, one after the other (``make bench``).

Each one prints its own table of ratios against the baseline it runs beside.
They take several minutes in all and load both cores: run them on a quiet
machine, never beside the test suite. ``--only NAME`` runs one of them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Final

HERE = Path(__file__).parent
#: The README's commands, in its order: the hot paths first.
BENCHMARKS: Final = {
    "server_validate": ["--duration", "8", "--rounds", "2"],
    "client_cache": [],
    "client_miss": [],
    "revocation_propagation": ["--count", "200"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    chosen = parser.parse_args().only or list(BENCHMARKS)
    for name in chosen:
        command = [sys.executable, str(HERE / f"{name}.py"), *BENCHMARKS[name]]
        print(f"\n$ {' '.join(command[1:])}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            print(f"{name} failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
