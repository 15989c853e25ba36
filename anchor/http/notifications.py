"""``GET /v1/notifications?state=``: the outbox and its delivery attempts, for operators
(their organisation's) and auditors (all). anchor.notify sends; this only shows."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from anchor.errors import AnchorError
from anchor.http.params import json_response
from anchor.http.problems import problem_response
from anchor.ledger.model import Notification
from anchor.ledger.ports import LedgerStore
from anchor.notify.config import NotifyConfig
from anchor.notify.deliver import Deliverer

__all__ = ["NOTIFIER", "NOTIFY_CONFIG", "setup_notifications"]

NOTIFY_CONFIG = web.AppKey("notify_config", NotifyConfig)
NOTIFIER = web.AppKey("notifier", Deliverer)
_STATES = ("pending", "delivered", "failed")


def _row(n: Notification, attempts: list[Any]) -> dict[str, Any]:
    return {
        "key": n.key, "org": n.org_id, "channel": n.channel, "kind": n.kind,
        "subject": n.subject, "state": n.state, "attempts": n.attempts,
        "created_at": n.created_at, "next_attempt_at": n.next_attempt_at,
        "delivered_at": n.delivered_at or None, "last_error": n.last_error,
        "log": [{"n": a.n, "status": a.status, "ok": a.ok, "at": a.at} for a in attempts],
    }  # fmt: skip


async def list_notifications(request: web.Request) -> web.StreamResponse:
    from anchor.http.keys import STORE
    from anchor.http.pages import CALLER_RESOLVER

    try:
        caller = await request.app[CALLER_RESOLVER](request)
        if caller.role not in ("operator", "auditor") or caller.org is None:
            raise AnchorError("forbidden", "notifications are listed for operators and auditors")
        state = request.query.get("state")
        if state is not None and state not in _STATES:
            raise AnchorError("bad-parameter", f"state is one of {', '.join(_STATES)}")
        store: LedgerStore = request.app[STORE]
        org = None if caller.role == "auditor" else caller.org

        def read() -> list[dict[str, Any]]:
            return [_row(n, store.notification_attempts(n.key))
                    for n in store.notifications(org, state)]  # fmt: skip

        return json_response({"notifications": await asyncio.to_thread(read)})
    except AnchorError as e:
        return problem_response(e.code, e.detail, request.path)


def setup_notifications(app: web.Application) -> None:
    from anchor.http.keys import OPENAPI

    doc = app.get(OPENAPI)
    if doc is not None:
        problem = {"content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}}  # fmt: skip
        doc["paths"]["/v1/notifications"] = {
            "get": {
                "summary": "The notification outbox and its delivery attempts",
                "parameters": [{"name": "state", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": list(_STATES)}}],
                "responses": {
                    "200": {"description": "notifications", "content": {
                        "application/json": {"schema": {"type": "object"}}}},
                    "400": {"description": "Bad parameter", **problem},
                    "401": {"description": "Unauthenticated", **problem},
                    "403": {"description": "Forbidden", **problem},
                },
            }
        }  # fmt: skip
    app.router.add_get("/v1/notifications", list_notifications)
