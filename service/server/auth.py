"""Bearer-token protection for the operator endpoints (``/admin/*``, ``POST /calls``)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]


def require_token(token: str | None, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind ``Authorization: Bearer <token>``; off (403) without a token."""

    expected = token.encode("utf-8") if token is not None else b""

    async def guarded(request: Request) -> Response:
        if token is None:
            return JSONResponse(
                {"error": "disabled", "reason": "set IVR_ADMIN_TOKEN to use this endpoint"},
                status_code=403,
            )
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        # Bytes: compare_digest refuses str with characters outside ASCII (a header's
        # latin-1 text may hold any).
        given_token = value.strip().encode("utf-8")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given_token, expected):
            return JSONResponse(
                {"error": "unauthorized", "reason": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await endpoint(request)

    return guarded


def by_method(**endpoints: Endpoint) -> Endpoint:
    """One endpoint for a route of several methods (``get=``, ``put=`` ...): Starlette's
    ``405`` then names all of them in its ``Allow`` header."""

    async def dispatch(request: Request) -> Response:
        method = "get" if request.method == "HEAD" else request.method.lower()
        return await endpoints[method](request)

    return dispatch
