"""``Policy``: what one action asks of a token, and how much it trusts a cached answer.

No anchor ties staleness and outage behaviour to how dangerous an action is;
here each action says it, next to its scopes, and every integration reads
the same three knobs:

==================  =============  ================================================
field               default        meaning
==================  =============  ================================================
``scopes``          ``()``         every one of them must be held (none: any valid
                                   token)
``max_staleness``   None           the oldest cached answer the action acts on, in
                                   seconds; None: the client's ``cache_ttl``; 0:
                                   ask the auth service on every request (a
                                   request already in flight for the same token
                                   is shared, so the answer is at most one round
                                   trip old)
``on_outage``       ``"deny"``     when the auth service cannot be reached:
                                   ``"deny"`` answers 503 (``UNAVAILABLE``);
                                   ``"serve_cached"`` lets a recently valid token
                                   through, flagged ``Caller.stale``
``outage_grace``    300 s with     how long past its freshness a positive answer
                    serve_cached   may serve during an outage; only with
                                   ``"serve_cached"``
==================  =============  ================================================

What ``"serve_cached"`` never does: serve a token past its ``expires_at``,
serve one whose last answer was negative (revoked, expired, unknown), or serve
one that a revocation event evicted; a token never seen before still gets 503.
The client's own ``stale_if_error`` does not apply under a policy: the action
decides, so that a client shared by a read action and a delete action cannot
make the delete ride an outage.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from amplify_auth_client._options import seconds
from amplify_auth_client.contract import is_scope

#: What an action does while the auth service cannot be reached.
OnOutage: TypeAlias = Literal["deny", "serve_cached"]
#: ``outage_grace`` when ``on_outage="serve_cached"`` does not say (5 minutes).
DEFAULT_OUTAGE_GRACE: Final = 300.0

_ON_OUTAGE: Final = ("deny", "serve_cached")


@dataclass(frozen=True, slots=True)
class Policy:
    """One action's requirements: its scopes, ``max_staleness`` and ``on_outage``.

    Checked when built, so that a typo stops a service at start-up rather
    than opening or closing an endpoint by surprise:

    >>> Policy(scopes=["orders:write"], max_staleness=0).scopes
    ('orders:write',)
    >>> Policy(scopes=["orders:read"], on_outage="serve_cached").outage_grace
    300.0
    """

    scopes: Collection[str] = ()
    max_staleness: float | None = None
    on_outage: OnOutage = "deny"
    outage_grace: float | None = None

    def __post_init__(self) -> None:
        # Frozen: normalised values are set the way dataclasses set them.
        object.__setattr__(self, "scopes", required_scopes(self.scopes))
        if self.max_staleness is not None:
            object.__setattr__(self, "max_staleness", seconds("max_staleness", self.max_staleness))
        if self.on_outage not in _ON_OUTAGE:
            raise ValueError(
                f"on_outage must be 'deny' (answer 503) or 'serve_cached' (serve a recently "
                f"valid token, flagged stale), got {self.on_outage!r}"
            )
        if self.on_outage == "deny":
            if self.outage_grace is not None:
                raise ValueError(
                    "outage_grace applies only with on_outage='serve_cached': "
                    "drop it, or serve cached answers during an outage"
                )
        else:
            grace = DEFAULT_OUTAGE_GRACE if self.outage_grace is None else self.outage_grace
            object.__setattr__(self, "outage_grace", seconds("outage_grace", grace))

    @property
    def stale_if_error(self) -> float:
        """The SDK's per-call ``stale_if_error`` for this policy: 0 when it denies."""
        return 0.0 if self.outage_grace is None else self.outage_grace

    def describe(self) -> str:
        """The policy in a few words, for route listings and logs."""
        parts = [" ".join(self.scopes) or "(any valid token)"]
        if self.max_staleness is not None:
            parts.append(f"max_staleness={self.max_staleness:g}")
        if self.on_outage != "deny":
            parts.append(f"on_outage={self.on_outage} ({self.outage_grace:g} s)")
        return ", ".join(parts)


def required_scopes(scopes: Collection[str]) -> tuple[str, ...]:
    """``scopes`` as a tuple without repeats, each one a scope a token can hold.

    A str is refused (iterating "read" would require "r", "e", "a" and "d"),
    and so is a scope no token can hold: the action would be unreachable, and
    that is better found at start-up than in production.
    """
    if isinstance(scopes, str | bytes) or scopes is None:
        raise TypeError(
            "scopes must be a collection of scope names, "
            f"not {type(scopes).__name__}: write [{scopes!r}]"
        )
    unique = tuple(dict.fromkeys(scopes))
    for scope in unique:
        if not is_scope(scope):
            raise ValueError(
                f"{scope!r} is not a scope a token can hold (letters, digits and _ . : / * -, "
                "starting with a letter or digit, at most 64 characters)"
            )
    return unique
