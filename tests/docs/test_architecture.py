"""docs/architecture.md's module map names every module of the three packages, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGES = ("amplify_auth_client", "amplify_auth_server", "stateless_microservice")


def modules(package: str) -> set[str]:
    base = ROOT / package
    return {
        path.relative_to(base).with_suffix("").as_posix()
        for path in base.rglob("*.py")
        if "versions" not in path.parts  # Alembic's migrations are data, not modules
    }


def mapped(package: str) -> set[str]:
    section = PAGE.split(f"### `{package}`", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("package", PACKAGES)
def test_the_module_map_is_true(package: str) -> None:
    assert mapped(package) == modules(package)
