"""One GA4 property's Data API (v1beta, REST): bearer token, retries, quota, paging.

Retries come from dlt's requests helper (5xx, connection errors and timeouts, with backoff,
`Retry-After` honoured, a bounded number of attempts) plus one condition of ours: a 429
`RESOURCE_EXHAUSTED` is retried unless it is the property's *daily* token quota, which no
wait within a sync can refill (it resets at midnight Pacific time): that one raises
`QuotaExhausted` at once, so the caller ends the sync for the day instead of hammering a
property whose every request now fails.

Every report asks for `returnPropertyQuota`; the last quota seen is kept in `quota`.
Errors name the property, the method, the HTTP status and Google's status and fields;
never the token, never a value of the report.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, Callable, Iterable, Iterator

import requests
from dlt.sources.helpers.requests import Client

from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.security.tls import connection_failure
from cleargro_pipeline.sources.ga4.endpoints import api_base, method_url, valid_property_id

REQUEST_TIMEOUT_S = 60
MAX_ATTEMPTS = 6
MAX_LIMIT = 250_000  # rows per runReport request, Google's cap
DEFAULT_LIMIT = 100_000
RETRY_STATUS = tuple(range(500, 600))  # 429 is decided by Ga4Client._temporary_quota
MESSAGE_CHARS = 300


class Ga4Error(CleargroError):
    """GA4 refused a request or answered something the connector cannot use."""


class QuotaExhausted(Ga4Error):
    """The property's daily token quota is used up: every request fails until it resets
    (midnight Pacific time). The caller ends the sync for the day (`source_quota` alert)."""

    def __init__(self, message: str, quota: str = "tokensPerDay"):
        super().__init__(message)
        self.quota = quota


class Ga4Throttled(Ga4Error):
    """Still RESOURCE_EXHAUSTED (a temporary quota) after every retry."""


class InvalidReportRequest(Ga4Error):
    """GA4 refused the request itself (HTTP 400): a connector bug or an unknown field;
    `fields` names the requested dimensions and metrics the answer points at."""

    def __init__(self, message: str, fields: Iterable[str] = ()):
        super().__init__(message)
        self.fields = tuple(fields)


class IncompatibleReport(InvalidReportRequest):
    """checkCompatibility: the report's dimensions and metrics cannot be asked together."""


class Ga4Client:
    """The Data API of one property. `token_source` is called for each request (google-auth
    renews the access token meanwhile); its value goes into the Authorization header only."""

    def __init__(self, property_id: str | int, token_source: Callable[[], str], *,
                 endpoint: str | None = None, backoff_factor: float = 1.0,
                 max_attempts: int = MAX_ATTEMPTS):
        self.property = valid_property_id(property_id)
        self.base = api_base(endpoint)
        self.max_attempts = max_attempts
        self.quota: dict[str, Any] = {}  # the last `propertyQuota` answered
        self.requests = 0  # requests answered (retries not counted)
        self._token_source = token_source
        self._compatible: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
        self.http = Client(request_timeout=REQUEST_TIMEOUT_S, raise_for_status=False,
                           status_codes=RETRY_STATUS, request_max_attempts=max_attempts,
                           request_backoff_factor=backoff_factor, request_max_retry_delay=60,
                           retry_condition=self._temporary_quota)

    # --- reports
    def run_report(self, request: dict[str, Any]) -> dict[str, Any]:
        """One runReport answer (a page), with the property's quota."""
        fields = _names(request.get("dimensions")) + _names(request.get("metrics"))
        body = self._post("runReport", {**request, "returnPropertyQuota": True}, fields)
        if isinstance(body.get("propertyQuota"), dict):
            self.quota = body["propertyQuota"]
        return body

    def report_pages(self, dimensions: list[str], metrics: list[str], start: date | str,
                     end: date | str, *, limit: int = DEFAULT_LIMIT) -> Iterator[dict[str, Any]]:
        """Every page of one report over [start, end], by `offset` until `rowCount`; ordered
        by the dimensions so pages neither overlap nor skip rows."""
        if not 0 < limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        request = {"dateRanges": [{"startDate": _day(start), "endDate": _day(end)}],
                   "dimensions": [{"name": d} for d in dimensions],
                   "metrics": [{"name": m} for m in metrics],
                   "orderBys": [{"dimension": {"dimensionName": d}} for d in dimensions],
                   "keepEmptyRows": False, "limit": limit}
        offset = 0
        while True:
            page = self.run_report({**request, "offset": offset})
            yield page
            offset += len(page.get("rows") or [])
            if not page.get("rows") or offset >= int(page.get("rowCount") or 0):
                return

    def time_zone(self) -> str:
        """The property's time zone (`metadata.timeZone`), from the smallest report there is."""
        page = self.run_report({"dateRanges": [{"startDate": "today", "endDate": "today"}],
                                "metrics": [{"name": "sessions"}], "limit": 1})
        zone = (page.get("metadata") or {}).get("timeZone")
        if not isinstance(zone, str) or not zone:
            raise Ga4Error(f"GA4 property {self.property}: runReport answered no time zone")
        return zone

    def check_compatibility(self, dimensions: list[str], metrics: list[str]) -> None:
        """Raise IncompatibleReport unless every dimension and metric can go in one report
        (asked once per configuration and client)."""
        key = (tuple(dimensions), tuple(metrics))
        if key in self._compatible:
            return
        body = self._post("checkCompatibility", {"dimensions": [{"name": d} for d in dimensions],
                                                 "metrics": [{"name": m} for m in metrics]},
                          list(dimensions) + list(metrics))
        verdicts = {**_verdicts(body.get("dimensionCompatibilities"), "dimensionMetadata"),
                    **_verdicts(body.get("metricCompatibilities"), "metricMetadata")}
        refused = [f for f in (*dimensions, *metrics) if verdicts.get(f) != "COMPATIBLE"]
        if refused:
            unknown = [f for f in refused if f not in verdicts]
            detail = f" ({', '.join(unknown)} not known to the property)" if unknown else ""
            raise IncompatibleReport(
                f"GA4 property {self.property}: {', '.join(refused)} cannot be asked together "
                f"with {', '.join(f for f in (*dimensions, *metrics) if f not in refused)}"
                f"{detail}", refused)
        self._compatible.add(key)

    # --- HTTP
    def _post(self, method: str, body: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        try:
            response = self.http.session.post(
                method_url(self.base, self.property, method), data=json.dumps(body),
                headers={"Authorization": f"Bearer {self._token_source()}",
                         "Content-Type": "application/json", "Accept": "application/json"},
                allow_redirects=False)
        except requests.RequestException as error:
            raise Ga4Error(f"GA4 property {self.property}: {method} failed to connect "
                           f"({connection_failure(error)})") from None
        if response.status_code != 200:
            raise self._error(method, response, fields)
        self.requests += 1
        try:
            answer = response.json()
        except ValueError:
            raise Ga4Error(f"GA4 property {self.property}: {method} answered a body that is "
                           "not JSON") from None
        if not isinstance(answer, dict):
            raise Ga4Error(f"GA4 property {self.property}: {method} answered JSON that is "
                           "not an object")
        return answer

    def _temporary_quota(self, response: Any, exception: BaseException | None) -> bool:
        """dlt's retry condition: a 429 is worth waiting for unless the day's quota is gone."""
        return (response is not None and response.status_code == 429
                and not self._daily_quota_gone(_google_error(response)))

    def _daily_quota_gone(self, error: dict[str, Any]) -> bool:
        # Google names the exhausted quota in the message ("Exhausted property tokens per
        # day ..."); a quota detail may name it too; the last quota seen may already say so.
        said = f"{error.get('message', '')} {json.dumps(error.get('details') or [])}".lower()
        remaining = (self.quota.get("tokensPerDay") or {}).get("remaining")
        return ("per day" in said or "tokensperday" in said
                or (isinstance(remaining, int) and remaining <= 0))

    def _error(self, method: str, response: Any, fields: list[str]) -> Exception:
        status, error = response.status_code, _google_error(response)
        code = str(error.get("status") or "")
        where = f"GA4 property {self.property}: {method} answered HTTP {status}" + (
            f" {code}" if code else "")
        message = str(error.get("message") or "")[:MESSAGE_CHARS]
        if status == 401:
            return CredentialsRejected(f"{where}: Google refused the access token (revoked or "
                                       "expired consent); reconnect Google for GA4")
        if status == 403 and _reason(error) == "SERVICE_DISABLED":
            return Ga4Error(f"{where}: the Data API is not enabled in the platform's Google "
                            "Cloud project")
        if status == 403:
            return CredentialsRejected(f"{where}: the connected Google account may not read "
                                       "this property (or lacks analytics.readonly); reconnect "
                                       "with an account that has access")
        if status == 429 and self._daily_quota_gone(error):
            return QuotaExhausted(f"{where}: the property's daily token quota is used up; it "
                                  "resets at midnight Pacific time")
        if status == 429:
            return Ga4Throttled(f"{where} after {self.max_attempts} attempts: {message}")
        if status == 400:
            named = [f for f in fields if re.search(rf"(?<![\w:]){re.escape(f)}(?!\w)", message)]
            return InvalidReportRequest(
                f"{where} for {', '.join(named) or 'the request'}: {message}", named)
        return Ga4Error(f"{where}" + (f" after {self.max_attempts} attempts" if status >= 500
                                      else "") + (f": {message}" if message else ""))


def _google_error(response: Any) -> dict[str, Any]:
    """The `error` object of Google's JSON error shape (empty when it is something else)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _reason(error: dict[str, Any]) -> str | None:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return None


def _names(items: Any) -> list[str]:
    return [str(i.get("name")) for i in items or [] if isinstance(i, dict)]


def _verdicts(items: Any, metadata: str) -> dict[str, str]:
    """apiName -> COMPATIBLE / INCOMPATIBLE of a checkCompatibility list."""
    out = {}
    for item in items or []:
        name = ((item or {}).get(metadata) or {}).get("apiName")
        if name:
            out[str(name)] = str(item.get("compatibility") or "")
    return out


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value
