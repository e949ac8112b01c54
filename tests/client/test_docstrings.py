"""The examples in the SDK's docstrings run and say what they show."""

from __future__ import annotations

import doctest
import textwrap
from types import ModuleType

import pytest

import amplify_auth_client
from amplify_auth_client import _cache, contract, testing


# Public classes claim the package as their module, so their examples
# (ValidationResult's, say) are found through the package, not through _models.
@pytest.mark.parametrize(
    ("module", "examples"), [(amplify_auth_client, 18), (_cache, 7), (contract, 12)]
)
def test_doctests(module: ModuleType, examples: int) -> None:
    # The lazily loaded classes have examples too: load them, so the count holds.
    assert amplify_auth_client.Authenticator is not None
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
    assert results.attempted == examples


def test_the_testing_module_example() -> None:
    # The module docstring shows a test a user would write: run it as one.
    doc = testing.__doc__
    assert doc is not None
    block = doc.split("::\n", 1)[1].split("\n\n", 2)
    code = textwrap.dedent("\n\n".join(block[:2]))
    namespace: dict[str, object] = {}
    exec(compile(code, "testing-example", "exec"), namespace)  # noqa: S102
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert len(tests) == 1
    for test in tests:
        test()
