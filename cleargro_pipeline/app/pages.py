"""What the service answers: small self-contained HTML pages for people (no script, nothing
loaded from elsewhere, never a secret or a request's own values beyond a shop domain and scope
names), short plain text for Shopify's webhooks."""

from __future__ import annotations

import html
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

logger = logging.getLogger("cleargro_pipeline.app")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # a callback URL carries a code: never pass it on
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Cleargro</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
color:#1f2933}}h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""
_STATUS_TEXT = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                405: "Method not allowed", 409: "Conflict", 413: "Too large",
                500: "Something went wrong", 502: "Shopify did not answer as expected",
                503: "Not available"}


def page(status: int, title: str, message: str, *,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    body = _TEMPLATE.format(title=html.escape(title), message=html.escape(message))
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def text(status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message + "\n" if message else "", status_code=status,
                             headers={"Cache-Control": "no-store", **(headers or {})})


def error_page(status: int) -> HTMLResponse:
    return page(status, _STATUS_TEXT.get(status, "Error"),
                "This request could not be completed." if status >= 500 else
                "There is nothing for this request here.")


async def http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and the like, raised by the router: a generic page (405 keeps its Allow)."""
    assert isinstance(exc, HTTPException)
    response = error_page(exc.status_code)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response
