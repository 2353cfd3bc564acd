"""Every route of the service, in one list: a route module (`webhooks`, `shopify`, `google`)
exports its own `routes`, and joins the service by being listed here."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cleargro_pipeline.app import google, shopify, webhooks


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    *webhooks.routes,
    *shopify.routes,
    *google.routes,
]
