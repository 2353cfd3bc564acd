"""One shop's GraphQL Admin API at the pinned version: retries, cost pacing, version check.

Retries come from dlt's requests helper (429, 5xx, connection errors and timeouts, with
backoff, `Retry-After` honoured, a bounded number of attempts) plus one condition of ours:
Shopify answers a throttled query with HTTP 200 and `errors[].extensions.code == "THROTTLED"`,
which a status-code retry would take for success. Before each query the client waits until
the cost bucket (`extensions.cost.throttleStatus` of the last answer, refilled at its restore
rate) can pay what the same document cost last time, so throttling is the exception.

Errors name the shop, the document and Shopify's error codes; never the token, never a value.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from dlt.sources.helpers.requests import Client

from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.sources.shopify import API_VERSION
from cleargro_pipeline.sources.shopify.endpoints import api_base, loopback_endpoint

REQUEST_TIMEOUT_S = 60
MAX_ATTEMPTS = 6


class ShopifyError(CleargroError):
    """Shopify refused a query or answered something the connector cannot use."""


class ShopifyThrottled(ShopifyError):
    """Still THROTTLED after every retry."""


class QueryTooCostly(ShopifyError):
    """The query's requested cost is above Shopify's cap for one query (MAX_COST_EXCEEDED)."""


@dataclass
class CostBucket:
    """Shopify's leaky bucket as the last answer described it."""
    available: float | None = None
    maximum: float | None = None
    restore_rate: float | None = None
    seen_at: float = 0.0
    last_cost: dict[str, float] = field(default_factory=dict)  # document name -> requested cost

    def wait_for(self, document: str) -> float:
        """Seconds to wait before `document` (at its last known cost) can be paid."""
        cost = self.last_cost.get(document)
        if cost is None or self.available is None or not self.restore_rate:
            return 0.0
        cost = min(cost, self.maximum or cost)
        now_available = self.available + (time.monotonic() - self.seen_at) * self.restore_rate
        return max(0.0, (cost - now_available) / self.restore_rate)

    def update(self, document: str, cost: dict[str, Any] | None) -> None:
        if not isinstance(cost, dict):
            return
        status = cost.get("throttleStatus") or {}
        if isinstance(cost.get("requestedQueryCost"), (int, float)):
            self.last_cost[document] = float(cost["requestedQueryCost"])
        if isinstance(status.get("currentlyAvailable"), (int, float)):
            self.available = float(status["currentlyAvailable"])
            self.maximum = float(status.get("maximumAvailable") or 0) or None
            self.restore_rate = float(status.get("restoreRate") or 0) or None
            self.seen_at = time.monotonic()


def _throttled(response: Any, exception: BaseException | None) -> bool:
    """dlt's retry condition for Shopify's HTTP-200 throttling. Only a GraphQL answer (a POST)
    can be throttled: reading a streamed bulk download's `content` here would pull the whole
    file into memory before the connector streams it."""
    if (response is None or response.status_code != 200
            or getattr(response.request, "method", None) != "POST"
            or b"THROTTLED" not in response.content):
        return False
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return False
    return any(isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
               for e in errors)


class ShopifyClient:
    """GraphQL Admin API of one shop. `token` is called for each request (an expiring token
    may have been refreshed meanwhile); `on_version` is told the version Shopify served when it
    differs from the pinned one (Shopify falls forward from an unsupported version)."""

    def __init__(self, shop: str, token: Callable[[], str], *, endpoint: str | None = None,
                 api_version: str = API_VERSION, on_version: Callable[[str, str], None] | None = None,
                 backoff_factor: float = 1.0, max_attempts: int = MAX_ATTEMPTS):
        self.shop, self.api_version = shop, api_version
        self._options = {"endpoint": endpoint, "api_version": api_version, "on_version": on_version,
                         "backoff_factor": backoff_factor, "max_attempts": max_attempts}
        self.base = api_base(shop, endpoint)
        self.url = f"{self.base}/admin/api/{api_version}/graphql.json"
        self._token, self._on_version = token, on_version
        self.bucket = CostBucket()
        self.served_version: str | None = None
        self.http = Client(request_timeout=REQUEST_TIMEOUT_S, raise_for_status=False,
                           request_max_attempts=max_attempts, request_backoff_factor=backoff_factor,
                           request_max_retry_delay=60, retry_condition=_throttled)

    def sibling(self) -> ShopifyClient:
        """A client of the same shop and token with its own connections and cost view, for
        another thread (a requests session is not promised to be thread-safe)."""
        return ShopifyClient(self.shop, self._token, **self._options)

    def query(self, document: str, variables: dict[str, Any] | None = None, *,
              name: str = "query") -> dict[str, Any]:
        """The `data` of one GraphQL document; raises ShopifyError on any `errors` answer."""
        pause = self.bucket.wait_for(name)
        if pause:
            time.sleep(pause)
        response = self.http.session.post(
            self.url, data=json.dumps({"query": document, "variables": variables or {}}),
            headers={"X-Shopify-Access-Token": self._token(), "Content-Type": "application/json",
                     "Accept": "application/json"}, allow_redirects=False)
        self._check_version(response.headers.get("X-Shopify-API-Version"))
        body = self._body(response, name)
        self.bucket.update(name, (body.get("extensions") or {}).get("cost"))
        errors = body.get("errors")
        if errors:
            raise self._error(errors, name)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ShopifyError(f"shop {self.shop}: {name} answered without data")
        return data

    def download(self, url: str) -> Any:
        """A streamed GET of a bulk result (a signed storage URL: no token is sent with it)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https":
            loopback_endpoint(f"{parts.scheme}://{parts.netloc}")
        response = self.http.session.get(url, stream=True, allow_redirects=True,
                                         timeout=REQUEST_TIMEOUT_S)
        if response.status_code != 200:
            response.close()
            raise ShopifyError(f"shop {self.shop}: bulk result download answered HTTP "
                               f"{response.status_code}")
        return response

    def _check_version(self, served: str | None) -> None:
        if served and served != self.api_version and served != self.served_version:
            self.served_version = served
            if self._on_version:
                self._on_version(self.api_version, served)

    def _body(self, response: Any, name: str) -> dict[str, Any]:
        status = response.status_code
        if status in (401, 403):
            raise CredentialsRejected(
                f"shop {self.shop} refused the stored credentials (HTTP {status}): the app was "
                "uninstalled or the token revoked; reconnect the shop")
        if status == 402:
            raise ShopifyError(f"shop {self.shop} is frozen (HTTP 402: unpaid Shopify plan)")
        if status == 423:
            raise ShopifyError(f"shop {self.shop} is locked (HTTP 423)")
        if status != 200:
            raise ShopifyError(f"shop {self.shop}: {name} answered HTTP {status} after "
                               f"{MAX_ATTEMPTS} attempts")
        try:
            body = response.json()
        except ValueError:
            raise ShopifyError(f"shop {self.shop}: {name} answered a body that is not JSON") from None
        if not isinstance(body, dict):
            raise ShopifyError(f"shop {self.shop}: {name} answered JSON that is not an object")
        return body

    def _error(self, errors: Any, name: str) -> ShopifyError:
        if not isinstance(errors, list):
            return ShopifyError(f"shop {self.shop}: {name} failed: {str(errors)[:200]}")
        codes = sorted({str((e.get("extensions") or {}).get("code") or "ERROR")
                        for e in errors if isinstance(e, dict)})
        if codes == ["THROTTLED"]:
            return ShopifyThrottled(f"shop {self.shop}: {name} still THROTTLED after "
                                    f"{MAX_ATTEMPTS} attempts")
        if codes == ["MAX_COST_EXCEEDED"]:
            return QueryTooCostly(f"shop {self.shop}: {name} asks for more than one query may cost")
        if "ACCESS_DENIED" in codes:
            return CredentialsRejected(f"shop {self.shop}: {name} was denied (ACCESS_DENIED): "
                                       "the granted scopes do not cover it; reconnect the shop")
        # Shopify's messages name fields and arguments, not data values.
        first = next((str(e.get("message"))[:200] for e in errors if isinstance(e, dict)), "")
        return ShopifyError(f"shop {self.shop}: {name} failed ({', '.join(codes)}): {first}")
