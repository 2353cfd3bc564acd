"""The service itself: the Starlette application over `routes.routes`, and the uvicorn server
that runs it (`cleargro serve`; `cleargro webhooks serve` is the same). Bound to 127.0.0.1 by
default: TLS belongs to the reverse proxy in front. uvicorn's access log is off; ours
(`AccessLog`) has the method, the path without its query (a callback's query holds a code) and
the status, never headers or bodies. `Guard` turns anything a route did not handle into a
generic 500 page, logging the exception's class only (a message or traceback could quote a
value)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cleargro_pipeline.app import config as app_config
from cleargro_pipeline.app import pages, routes
from cleargro_pipeline.app.config import AppConfig

logger = logging.getLogger("cleargro_pipeline.app")

DEFAULT_HOST, DEFAULT_PORT = app_config.DEFAULT_HOST, app_config.DEFAULT_PORT


class AccessLog:
    """One line per request: method, path (no query), status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                logger.info("%s %s -> %s", scope["method"], scope["path"][:200], message["status"])
            await send(message)

        await self.app(scope, receive, logged)


class Guard:
    """The last resort: a generic 500 page, the exception's class in the log."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001
            logger.error("request failed (%s)", type(exc).__name__)
            if not started:
                await pages.error_page(500)(scope, receive, send)


def create_app(config: AppConfig) -> Starlette:
    app = Starlette(routes=routes.routes,
                    middleware=[Middleware(AccessLog), Middleware(Guard)],
                    exception_handlers={HTTPException: pages.http_error})
    app.state.config = config
    return app


class AppServer:
    """The service on `host:port` (port 0: any free port): `run()` in the foreground, or
    `start()` in a thread and `stop()`. The secrets are read when it is made."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 public_url: str | None = None, config: AppConfig | None = None):
        self.config = config or app_config.load(public_url)
        self.app = create_app(self.config)
        # uvicorn logs the access line (with the query: a callback's code) whenever its logger
        # has a handler anywhere up the tree, whatever `access_log` says: silenced for good.
        uvicorn_access = logging.getLogger("uvicorn.access")
        uvicorn_access.disabled = True
        uvicorn_access.setLevel(logging.CRITICAL + 1)
        self.host = host
        # h11: uvicorn's own dependency, the same parser whatever extras are installed.
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host=host, port=port, http="h11", log_config=None, access_log=False,
            server_header=False, proxy_headers=False, lifespan="off", timeout_keep_alive=5,
            limit_concurrency=200))
        self._thread: threading.Thread | None = None

    @property
    def secret(self) -> bytes:
        """The secret webhooks are signed with."""
        return self.config.webhook_secret

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        """Serve until interrupted."""
        self._server.run()

    def start(self, timeout: float = 10.0) -> "AppServer":
        self._thread = threading.Thread(target=self._server.run, name="cleargro-app", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise app_config.AppConfigError(
                    f"the app service did not start on {self.host}:{self._server.config.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "AppServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
          public_url: str | None = None) -> None:
    """`cleargro serve`: serve until interrupted."""
    server = AppServer(host, port, public_url=public_url)
    if server.config.shopify_app is None:
        logger.warning("app service: the platform secret 'shopify_app' is not stored: "
                       "webhooks only, no Shopify install")
    elif server.config.public_url is None:
        logger.warning("app service: no --public-url: Shopify installs are refused until the "
                       "service knows where Shopify sends merchants back")
    logger.info("app service: listening on http://%s:%s", host, port)
    server.run()
