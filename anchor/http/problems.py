"""RFC 9457 problem responses: the one place errors become HTTP.

Every refusal leaves the service as ``application/problem+json`` with a stable
``code`` (also the last segment of ``type``), so gateways and scripts branch
on the code and people read ``detail``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from anchor.errors import PROBLEM_TITLES, AnchorError

__all__ = ["PROBLEM_BASE", "PROBLEM_CONTENT_TYPE", "problem_middleware", "problem_response"]

PROBLEM_BASE = "https://coldtrail.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
_log = logging.getLogger("coldtrail.anchor.http")

_HTTP_CODES = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "too-large",
    415: "unsupported-media-type",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ProblemHook = Callable[[str], None]


def problem_response(
    code: str, detail: str, instance: str | None = None, *, retry_after_s: int | None = None
) -> web.Response:
    status, title = PROBLEM_TITLES[code]
    body: dict[str, object] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="coldtrail-anchor"'
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def problem_middleware(
    on_problem: ProblemHook | None = None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        retry_after_s: int | None = None
        try:
            return await handler(request)
        except AnchorError as e:
            code, detail, retry_after_s = e.code, e.detail, e.retry_after_s
        except web.HTTPRequestEntityTooLarge:
            code, detail = "too-large", "the body is larger than this service accepts"
        except web.HTTPException as e:
            if e.status < 400:
                raise
            code = _HTTP_CODES.get(e.status, "internal" if e.status >= 500 else "malformed")
            detail = e.text or e.reason
            if e.status == 405:
                detail = f"{request.method} is not allowed on {request.path}"
            elif e.status == 404:
                detail = f"nothing at {request.path}"
        except Exception:
            _log.exception("unhandled error on %s %s", request.method, request.path)
            code, detail = "internal", "the server failed; see its log"
        if on_problem is not None:
            on_problem(code)
        return problem_response(code, detail, instance=request.path, retry_after_s=retry_after_s)

    return middleware


def with_problems(handler: Handler) -> Handler:
    """``handler`` with its :class:`AnchorError` rendered as a problem, for route modules
    mounted without the app's problem middleware too (tests mount them alone)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AnchorError as e:
            return problem_response(e.code, e.detail, request.path, retry_after_s=e.retry_after_s)

    return wrapped
