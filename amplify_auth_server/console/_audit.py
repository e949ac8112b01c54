"""The audit log screen, and its export as CSV or JSON Lines.

The filters are the API's (``GET /auth/audit``, and a token's own trail when
a token id is given), read by the API's own route functions; an export walks
every page of the same listing, so it holds exactly what the screen pages
through, streamed a page at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from amplify_auth_client.contract import MAX_PAGE_SIZE, TOKEN_ID, iso
from amplify_auth_server.console._access import SignedIn, SignedInDep
from amplify_auth_server.console._render import page
from amplify_auth_server.console._tokens import PAGE_SIZE, context
from amplify_auth_server.console._views import AUDIT_FILTERS
from amplify_auth_server.routes import tokens as api
from amplify_auth_server.schemas import AuditPageResponse, AuditRecordResponse

router = APIRouter()

#: The columns of a CSV export, in order (``details`` as JSON text).
CSV_FIELDS = ("id", "at", "actor_id", "actor_name", "action", "token_id", "details")

TokenIdFilter = Annotated[str | None, Query(pattern=TOKEN_ID.pattern)]


class AuditQuery:
    """The audit filters of one request, and the API call that serves them."""

    def __init__(
        self,
        action: api.Action = None,
        actor: api.ActorId = None,
        token: TokenIdFilter = None,
        since: api.Since = None,
        until: api.Until = None,
    ) -> None:
        self.values: dict[str, Any] = {
            "action": action,
            "actor": actor,
            "token": token,
            "since": since,
            "until": until,
        }

    @property
    def given(self) -> dict[str, str]:
        """The filters set, as query parameters."""
        return {
            key: iso(value) if hasattr(value, "tzinfo") else str(value)
            for key, value in self.values.items()
            if value is not None
        }

    async def page(self, signed: SignedIn, cursor: str | None, limit: int) -> AuditPageResponse:
        filters = {key: self.values[key] for key in ("action", "actor", "since", "until")}
        token = self.values["token"]
        if token is not None:
            return await api.token_audit(
                token, signed.actor, signed.parts, limit=limit, cursor=cursor, **filters
            )
        return await api.audit(signed.actor, signed.parts, limit=limit, cursor=cursor, **filters)


@router.get("/audit")
async def audit_log(
    request: Request,
    signed: SignedInDep,
    action: api.Action = None,
    actor: api.ActorId = None,
    token: TokenIdFilter = None,
    since: api.Since = None,
    until: api.Until = None,
    cursor: api.Cursor = None,
) -> Response:
    query = AuditQuery(action, actor, token, since, until)
    result = await query.page(signed, cursor, PAGE_SIZE)
    given = query.given
    next_url = None
    if result.next_cursor is not None:
        next_url = "/console/audit?" + urlencode({**given, "cursor": result.next_cursor})
    return page(
        request,
        "audit.html",
        context(
            signed,
            title="Audit log",
            entries=result.items,
            filters=AUDIT_FILTERS,
            chosen={f.key: given.get(f.key, "") for f in AUDIT_FILTERS},
            next_url=next_url,
            first_url="/console/audit?" + urlencode(given) if cursor is not None else None,
            csv_url="/console/audit/export?" + urlencode({**given, "format": "csv"}),
            jsonl_url="/console/audit/export?" + urlencode({**given, "format": "jsonl"}),
        ),
    )


def _row(entry: AuditRecordResponse) -> dict[str, Any]:
    return entry.model_dump(mode="json")


def csv_line(entry: AuditRecordResponse) -> str:
    buffer = io.StringIO()
    row = _row(entry)
    row["details"] = orjson.dumps(row["details"]).decode()
    csv.DictWriter(buffer, CSV_FIELDS).writerow(row)
    return buffer.getvalue()


def jsonl_line(entry: AuditRecordResponse) -> str:
    return orjson.dumps(_row(entry)).decode() + "\n"


@router.get("/audit/export")
async def export(
    signed: SignedInDep,
    kind: Annotated[Literal["csv", "jsonl"], Query(alias="format")],
    action: api.Action = None,
    actor: api.ActorId = None,
    token: TokenIdFilter = None,
    since: api.Since = None,
    until: api.Until = None,
) -> Response:
    query = AuditQuery(action, actor, token, since, until)
    # The first page before the response starts: a bad filter is a page, not a cut stream.
    first = await query.page(signed, None, MAX_PAGE_SIZE)

    async def lines() -> AsyncIterator[str]:
        if kind == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerow(CSV_FIELDS)
            yield buffer.getvalue()
        result = first
        while True:
            for entry in result.items:
                yield csv_line(entry) if kind == "csv" else jsonl_line(entry)
            if result.next_cursor is None:
                return
            result = await query.page(signed, result.next_cursor, MAX_PAGE_SIZE)

    media = "text/csv; charset=utf-8" if kind == "csv" else "application/jsonl; charset=utf-8"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{kind}"'},
    )
