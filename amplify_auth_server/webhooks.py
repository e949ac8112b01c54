"""Webhook events: what each says, how it is signed, and the outbox rows that carry it.

A command that changes tokens says what happened with one call,
``await batch.notify("token.revoked", [(record, actor)])``
(:class:`~amplify_auth_server.commands.Batch`); the writer then writes, in
the change's own transaction, one ``webhook_outbox`` row per event and
configured URL (:meth:`WebhookOutbox.rows`). So an event exists if and only
if its change committed, and it outlives the process that made it:
:mod:`amplify_auth_server.deliveries` sends it, at least once, from any
replica. With no ``WEBHOOK_URLS`` there is no :class:`WebhookOutbox` and
``notify`` returns at once: nothing is written.

Payloads follow Standard Webhooks: ``{"type", "timestamp", "data"}``, with
``data`` naming the token by id, name, owner, scopes and times, and who
acted; never the token nor its hash (a receiver is not trusted with a
credential, and a hash would let it test guesses offline). Signing is the
``standardwebhooks`` library's: ``webhook-signature`` is ``v1,`` and the
base64 HMAC-SHA256 of ``id.timestamp.body`` under the ``whsec_`` secret.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from standardwebhooks import Webhook

from amplify_auth_client.contract import iso
from amplify_auth_server.models import Actor, TokenRecord

#: The events sent.
EventType = Literal[
    "token.created",
    "token.revoked",
    "token.extended",
    "token.rotated",
    "token.rotation_finished",
    "token.expiring",
]

#: The webhook-id's prefix, as Standard Webhooks' examples write it.
MESSAGE_ID_PREFIX: Final = "msg_"


def new_message_id() -> str:
    """A fresh webhook-id: what receivers deduplicate on, the same at every attempt."""
    return MESSAGE_ID_PREFIX + secrets.token_hex(16)


def event_data(record: TokenRecord, actor: Actor) -> dict[str, Any]:
    """What an event says about a token: ids, names, owner, scopes and times, nothing secret.

    Built field by field (never from the record as a whole) so that a field
    added to :class:`TokenRecord` later reaches no receiver by accident.
    """
    return {
        "token_id": record.id,
        "name": record.name,
        "owner": record.owner,
        "scopes": list(record.scopes),
        "created_at": iso(record.created_at),
        "expires_at": None if record.expires_at is None else iso(record.expires_at),
        "revoked_at": None if record.revoked_at is None else iso(record.revoked_at),
        # Rotation: the successor of a rotated token, the token a successor replaced.
        "replaced_by": record.replaced_by,
        "rotated_from": record.rotated_from,
        "actor_id": actor.id,
    }


def payload(type_: EventType, data: dict[str, Any], at: datetime) -> str:
    """The JSON body of an event, exactly as it is signed and sent at every attempt."""
    return orjson.dumps({"type": type_, "timestamp": iso(at), "data": data}).decode()


@dataclass(frozen=True, slots=True)
class WebhookOutbox:
    """Where events go (``WEBHOOK_URLS``), and the writer's nudge to the delivery loop."""

    urls: tuple[str, ...]
    #: Set by the writer after a commit that wrote rows: this replica sends
    #: its own events at once instead of at the next poll.
    due: asyncio.Event = field(default_factory=asyncio.Event)

    def rows(
        self, type_: EventType, events: Iterable[tuple[TokenRecord, Actor]], now: datetime
    ) -> list[dict[str, Any]]:
        """The ``webhook_outbox`` rows of these events: one per event and URL, due now."""
        rows: list[dict[str, Any]] = []
        for record, actor in events:
            message_id = new_message_id()
            body = payload(type_, event_data(record, actor), now)
            rows += [
                {
                    "id": message_id,
                    "url": url,
                    "type": type_,
                    "body": body,
                    "created_at": now,
                    "next_attempt_at": now,
                    "attempts": 0,
                }
                for url in self.urls
            ]
        return rows


class Signer:
    """Standard Webhooks signatures under one ``whsec_`` secret."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    def headers(self, message_id: str, body: str, at: datetime) -> dict[str, str]:
        """The three headers of one attempt, timestamped ``at`` (a receiver refuses a
        timestamp more than five minutes off, so every retry is signed afresh)."""
        at = at.astimezone(UTC)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, at, body),
            "content-type": "application/json",
        }
