"""The token screens: the list with its filters and bulk revoke, create, detail,
extend, rotate and revoke.

Each screen calls the API's own route functions (:mod:`amplify_auth_server.routes.tokens`)
with the signed-in token as the actor: the same checks, the same single
writer, the same audit entries as ``auth-cli`` or any API client gets. Only
the shapes differ: form fields in, pages out.

A change answers with a redirect to a page that shows its outcome (so a
reload does not repeat it); creation and rotation are the exceptions, answered
with the page that shows the new token, once: that response is not stored
(``no-store``) and no URL leads back to it. A rotation sent again (a reload)
rotates nothing: the token is rotated already, and the API's 409 says so.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from amplify_auth_client.contract import MAX_TTL_DAYS, ListStatus
from amplify_auth_server.console._access import SignedIn, SignedInDep
from amplify_auth_server.console._render import page
from amplify_auth_server.console._security import check_csrf, field, read_form
from amplify_auth_server.console._views import (
    EXPIRING_COLUMNS,
    TOKEN_COLUMNS,
    TOKEN_FILTERS,
    every_day,
)
from amplify_auth_server.errors import BeyondDelegation, Conflict
from amplify_auth_server.models import utcnow
from amplify_auth_server.routes import tokens as api
from amplify_auth_server.schemas import (
    CreateTokenRequest,
    ExtendTokenRequest,
    NamePrefix,
    Owner,
    RevokeByIds,
    RotateTokenRequest,
    Scope,
)

router = APIRouter()

#: Rows per page of the token list and of a token's audit timeline.
PAGE_SIZE = 50

TokenId = Annotated[str, Path(max_length=64)]


def context(signed: SignedIn, **values: Any) -> dict[str, Any]:
    """What every signed-in page needs: who is signed in, the CSRF token, the last note."""
    flash, signed.session.flash = signed.session.flash, None
    return {"signed_in": signed.session, "csrf": signed.session.csrf, "flash": flash, **values}


def problems(exc: ValidationError) -> list[str]:
    """A validation error as lines a person reads, without the input (it may be a secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"] if part not in ("body",))
        lines.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return lines


@router.get("/tokens")
async def token_list(
    request: Request,
    signed: SignedInDep,
    status: Annotated[ListStatus | None, Query()] = None,
    name: Annotated[NamePrefix | None, Query()] = None,
    scope: Annotated[Scope | None, Query()] = None,
    expires_within_days: Annotated[int | None, Query(ge=0, le=MAX_TTL_DAYS)] = None,
    owner: Annotated[Owner | None, Query()] = None,
    unused_for_days: Annotated[int | None, Query(ge=1, le=MAX_TTL_DAYS)] = None,
    used_within_days: Annotated[int | None, Query(ge=1, le=MAX_TTL_DAYS)] = None,
    cursor: api.Cursor = None,
) -> Response:
    chosen = {
        "status": status,
        "name": name,
        "scope": scope,
        "expires_within_days": expires_within_days,
        "owner": owner,
        "unused_for_days": unused_for_days,
        "used_within_days": used_within_days,
    }
    result = await api.list_tokens(
        signed.actor,
        signed.parts,
        limit=PAGE_SIZE,
        cursor=cursor,
        status=status,
        name=name,
        scope=scope,
        expires_within_days=expires_within_days,
        owner=owner,
        unused_for_days=unused_for_days,
        used_within_days=used_within_days,
    )
    given = {key: value for key, value in chosen.items() if value is not None}
    next_url = None
    if result.next_cursor is not None:
        next_url = "/console/tokens?" + urlencode({**given, "cursor": result.next_cursor})
    first_url = "/console/tokens?" + urlencode(given) if cursor is not None else None
    return page(
        request,
        "tokens.html",
        context(
            signed,
            title="Tokens",
            tokens=result.items,
            # Listing what expires soon is where extending and rotating begin.
            columns=TOKEN_COLUMNS if expires_within_days is None else EXPIRING_COLUMNS,
            filters=TOKEN_FILTERS,
            chosen={key: "" if value is None else str(value) for key, value in chosen.items()},
            next_url=next_url,
            first_url=first_url,
        ),
    )


@router.post("/tokens/revoke")
async def revoke_selected(request: Request, signed: SignedInDep) -> Response:
    """Step one shows what will be revoked; step two (``confirm``) revokes it."""
    form = await read_form(request)
    check_csrf(form, signed.session.csrf)
    ids = form.get("token_id", [])
    try:
        body = RevokeByIds(token_ids=ids)
    except ValidationError as exc:
        signed.session.flash = "Nothing revoked: " + "; ".join(problems(exc))
        return RedirectResponse("/console/tokens", status_code=303)
    if field(form, "confirm") != "yes":
        return page(
            request,
            "confirm_bulk.html",
            context(signed, title="Revoke the selected tokens", token_ids=body.token_ids),
        )
    done = await api.revoke_tokens(body, signed.actor, signed.parts)
    signed.session.flash = f"Revoked {done.revoked_count} of {len(body.token_ids)} tokens."
    return RedirectResponse("/console/tokens", status_code=303)


@router.get("/tokens/new")
async def new_token(request: Request, signed: SignedInDep) -> Response:
    return _form(request, signed, {}, [])


def _form(
    request: Request,
    signed: SignedIn,
    values: dict[str, str],
    errors: list[str],
    *,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "new.html",
        context(
            signed,
            title="Create a token",
            values=values,
            errors=errors,
            form_id=signed.session.hand_out_form(),
        ),
        status_code=status_code,
    )


def number(text: str) -> int | str:
    """A form's number as the API's strict integer fields take it; other text as it is
    (the model then says what is wrong)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else text


def _creation(form: dict[str, list[str]]) -> dict[str, Any]:
    """The create form's fields as the API's request body."""
    scopes = field(form, "scopes").replace(",", " ").split()
    metadata: dict[str, str] = {}
    for line in field(form, "metadata").splitlines():
        key, _, value = line.partition("=")
        if key.strip():
            metadata[key.strip()] = value.strip()
    ttl = number(field(form, "ttl_days"))
    return {
        "name": field(form, "name"),
        "scopes": scopes,
        "ttl_days": None if ttl == "" else ttl,
        "description": field(form, "description") or None,
        "metadata": metadata or None,
        "owner": field(form, "owner") or None,
    }


@router.post("/tokens/new")
async def create_token(request: Request, signed: SignedInDep) -> Response:
    form = await read_form(request)
    check_csrf(form, signed.session.csrf)
    if not signed.session.take_form(field(form, "form_id")):
        # Sent again (a reload, back then forward): the token it made was shown once.
        signed.session.flash = "That form was already sent; its token was shown once, then."
        return RedirectResponse("/console/tokens", status_code=303)
    try:
        body = CreateTokenRequest.model_validate(_creation(form))
    except ValidationError as exc:
        fields = ("name", "scopes", "ttl_days", "description", "metadata")
        values = {key: field(form, key) for key in fields}
        return _form(request, signed, values, problems(exc), status_code=422)
    created, _ = await api.mint(body, signed.actor, signed.parts, None)
    return page(request, "created.html", context(signed, title="Token created", created=created))


@router.get("/tokens/{token_id}")
async def token_detail(request: Request, signed: SignedInDep, token_id: TokenId) -> Response:
    token = await api.get_token(token_id, signed.actor, signed.parts)
    timeline = await api.token_audit(token_id, signed.actor, signed.parts, limit=PAGE_SIZE)
    return page(
        request,
        "detail.html",
        context(
            signed,
            title=f"Token {token.name}",
            token=token,
            timeline=timeline.items,
            days=every_day(token.usage, utcnow().date()),
        ),
    )


@router.post("/tokens/{token_id}/extend")
async def extend(request: Request, signed: SignedInDep, token_id: TokenId) -> Response:
    form = await read_form(request)
    check_csrf(form, signed.session.csrf)
    token = await api.get_token(token_id, signed.actor, signed.parts)
    try:
        body = ExtendTokenRequest.model_validate({"days": number(field(form, "days"))})
    except ValidationError as exc:
        signed.session.flash = "Not extended: " + "; ".join(problems(exc))
    else:
        try:
            await api.extend_token(token.token_id, body, signed.actor, signed.parts)
        except Conflict as exc:  # revoked meanwhile, never expiring, past the limit
            signed.session.flash = f"Not extended: {exc.detail}."
        else:
            signed.session.flash = f"Extended by {body.days} days."
    return RedirectResponse(f"/console/tokens/{token.token_id}", status_code=303)


@router.post("/tokens/{token_id}/rotate")
async def rotate(request: Request, signed: SignedInDep, token_id: TokenId) -> Response:
    """The successor's page (its secret, once), or back to the detail page saying why not."""
    form = await read_form(request)
    check_csrf(form, signed.session.csrf)
    token = await api.get_token(token_id, signed.actor, signed.parts)
    idle = number(field(form, "finish_when_idle_seconds"))
    try:
        body = RotateTokenRequest.model_validate(
            {
                "grace_seconds": number(field(form, "grace_seconds")),
                "finish_when_idle_seconds": None if idle == "" else idle,
            }
        )
    except ValidationError as exc:
        signed.session.flash = "Not rotated: " + "; ".join(problems(exc))
    else:
        try:
            rotated = await api.rotate_token(
                token.token_id, body, signed.actor, signed.parts, Response()
            )
        except (Conflict, BeyondDelegation) as exc:  # rotated, revoked or expired meanwhile
            signed.session.flash = f"Not rotated: {exc.detail}."
        else:
            return page(
                request, "created.html", context(signed, title="Token rotated", created=rotated)
            )
    return RedirectResponse(f"/console/tokens/{token.token_id}", status_code=303)


@router.get("/tokens/{token_id}/revoke")
async def confirm_revoke(request: Request, signed: SignedInDep, token_id: TokenId) -> Response:
    token = await api.get_token(token_id, signed.actor, signed.parts)
    return page(
        request, "confirm_revoke.html", context(signed, title="Revoke a token", token=token)
    )


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, signed: SignedInDep, token_id: TokenId) -> Response:
    check_csrf(await read_form(request), signed.session.csrf)
    token = await api.revoke_token(token_id, signed.actor, signed.parts)
    signed.session.flash = "Revoked: every service now refuses this token."
    return RedirectResponse(f"/console/tokens/{token.token_id}", status_code=303)
