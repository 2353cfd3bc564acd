"""A local fake of the GA4 Data API (v1beta, REST), serving the demo shop's GA4 reports.

It speaks the wire format over real HTTP on 127.0.0.1 (checked against Google's published
`runReport` body in `../shared/fixtures/ga4/report.json` by tests/test_fake_ga4.py):

    with FakeGa4(DemoShop(size="small")) as fake:
        fake.url                  # http://127.0.0.1:PORT, the connector's `endpoint`
        fake.fail_next("rate_limited", "server_error")  # scripted faults, one per request
        fake.daily_tokens = 5     # the property's daily token budget (1 token a request)
        fake.threshold_days = {date(2026, 11, 20)}      # answers covering it are flagged

- `POST /v1beta/properties/{id}:runReport`: `dateRanges` (one range; YYYY-MM-DD, `today`,
  `yesterday`, `NdaysAgo`, as of `fake.today`), `dimensions`, `metrics`, `orderBys`
  (dimension orderings), `limit` (at most 250,000) and `offset`, `metricAggregations`
  (TOTAL, MAXIMUM, MINIMUM), `returnPropertyQuota`. Rows are the demo's `raw_ga4` tables;
  a request naming fewer dimensions than its table has is aggregated (sums). Every value is
  a string; `date` is YYYYMMDD. Fields left at their default are left out, as proto3 JSON
  does (`rowCount` 0, `rows` [], false flags).
- `POST /v1beta/properties/{id}:checkCompatibility`: each known dimension and metric with
  COMPATIBLE / INCOMPATIBLE; item-scoped dimensions and event-scoped metrics exclude each
  other (GA4's rule since the 2022-12 schema change).
- Errors in Google's shape `{"error": {"code", "message", "status"}}`: 401 UNAUTHENTICATED
  for a bearer token other than `fake.token`, 403 PERMISSION_DENIED for another property,
  400 INVALID_ARGUMENT for an unknown field or an incompatible request, 429
  RESOURCE_EXHAUSTED for a scripted temporary quota or the spent daily budget.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PATH = re.compile(r"^/v1beta/properties/([^/:]+):(runReport|checkCompatibility)$")
MAX_LIMIT = 250_000
DEFAULT_LIMIT = 10_000
TABLES = ("items_daily", "traffic_daily")
# field -> tables serving it; the metrics' types as GA names them.
DIMENSIONS = {"date": TABLES, "itemId": ("items_daily",), "itemName": ("items_daily",),
              "sessionSourceMedium": ("traffic_daily",)}
METRICS = {"itemsViewed": ("items_daily", "TYPE_INTEGER"),
           "itemsAddedToCart": ("items_daily", "TYPE_INTEGER"),
           "itemsPurchased": ("items_daily", "TYPE_INTEGER"),
           "itemRevenue": ("items_daily", "TYPE_CURRENCY"),
           "sessions": ("traffic_daily", "TYPE_INTEGER"),
           "engagedSessions": ("traffic_daily", "TYPE_INTEGER"),
           "ecommercePurchases": ("traffic_daily", "TYPE_INTEGER"),
           "purchaseRevenue": ("traffic_daily", "TYPE_CURRENCY")}
# Known to checkCompatibility, not served by runReport.
OTHER_DIMENSIONS = ("itemBrand", "itemCategory", "itemVariant", "sessionSource", "sessionMedium")
OTHER_METRICS = {"addToCarts": "TYPE_INTEGER", "checkouts": "TYPE_INTEGER",
                 "eventCount": "TYPE_INTEGER", "totalRevenue": "TYPE_CURRENCY"}
ITEM_SCOPED = {"itemId", "itemName", "itemBrand", "itemCategory", "itemVariant"}
EVENT_SCOPED = {"addToCarts", "checkouts", "ecommercePurchases", "eventCount", "purchaseRevenue",
                "totalRevenue"}
FAULTS = {"rate_limited", "hourly_quota", "server_error", "unavailable", "unauthenticated"}
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, "
                   "login cookie or other valid authentication credential.")
PERMISSION_DENIED = "User does not have sufficient permissions for this property."
DAILY = "Exhausted property tokens per day. These quota tokens will return in under 24 hours."
TEMPORARY = {"rate_limited": "Exhausted concurrent requests quota.",
             "hourly_quota": "Exhausted property tokens per hour."}
DAILY_LIMIT, HOURLY_LIMIT = 200_000, 40_000
AGGREGATES = {"TOTAL": ("totals", "sum", "RESERVED_TOTAL"),
              "MAXIMUM": ("maximums", "max", "RESERVED_MAX"),
              "MINIMUM": ("minimums", "min", "RESERVED_MIN")}


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self.server.fake._on_post(self)  # type: ignore[attr-defined]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeGa4:
    """GA4's Data API on 127.0.0.1 for one property, serving a `DemoShop`. Starts on
    construction."""

    def __init__(self, shop: Any, *, property_id: str = "123456789", token: str = "ya29.fake",
                 time_zone: str = "America/New_York", currency: str = "USD", port: int = 0):
        self.property_id, self.token, self.time_zone, self.currency = (
            property_id, token, time_zone, currency)
        self.tables = {t: pa.concat_tables(shop.iter_table("raw_ga4", t)) for t in TABLES}
        self.today: date = max(pc.max(t["date"]).as_py() for t in self.tables.values())
        self.daily_tokens: int | None = None  # None: no daily limit
        self.tokens_used = 0
        self.threshold_days: set[date] = set()
        self.data_loss_days: set[date] = set()
        self.sampled_days: set[date] = set()
        self.requests: list[tuple[str, dict]] = []  # (method, body) of every authorised POST
        self.responses: list[int] = []  # HTTP status of every POST, in order
        self._faults: deque[str] = deque()
        # A report request that hangs (a slow answer mid-sync): after `stall_after` runReport
        # answers, the next one waits for `release`; `stalled` is set once it hangs.
        self.stall_after: int | None = None
        # Benchmarks: GA builds its answers on its own servers, so the time the fake takes to
        # write the JSON is not the client's. With the cache on, an answer is built once per
        # request body and sent again to the same request.
        self.cache_answers = False
        self._answers: dict[tuple[str, bytes], tuple[int, bytes]] = {}
        self.stalled, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name="fake-ga4",
                                        daemon=True)
        self._thread.start()

    # ---- public API
    def __enter__(self) -> FakeGa4:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, *faults: str) -> None:
        """Queue faults for the next requests, one each: rate_limited (429, concurrent
        requests), hourly_quota (429, tokens per hour), server_error (500), unavailable (503),
        unauthenticated (401)."""
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")
        with self._lock:
            self._faults.extend(faults)

    def reports(self) -> list[dict]:
        """The runReport bodies received, in order."""
        return [body for method, body in self.requests if method == "runReport"]

    # ---- HTTP
    def _on_post(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path, authorization = handler.path.split("?", 1)[0], handler.headers.get("Authorization") or ""
        cached = self._answers.get((path, raw)) if self.cache_answers else None
        if cached is not None and authorization == f"Bearer {self.token}":
            status, body = cached
        else:
            status, payload = self._answer(path, authorization, raw)
            body = json.dumps(payload).encode()
            if self.cache_answers and status == 200:
                self._answers[(path, raw)] = (status, body)
        with self._lock:
            self.responses.append(status)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict]:
        match = PATH.match(path)
        if not match:
            return _error(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        prop, method = match.groups()
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault == "unauthenticated" or authorization != f"Bearer {self.token}":
            return _error(401, "UNAUTHENTICATED", UNAUTHENTICATED)
        if prop != self.property_id:
            return _error(403, "PERMISSION_DENIED", PERMISSION_DENIED)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        with self._lock:
            self.requests.append((method, body))
            answered = sum(1 for m, _ in self.requests if m == "runReport")
        if method == "runReport" and self.stall_after is not None and answered > self.stall_after:
            self.stalled.set()
            self.release.wait(300)
        if fault in TEMPORARY:
            return _error(429, "RESOURCE_EXHAUSTED", TEMPORARY[fault])
        if fault == "server_error":
            return _error(500, "INTERNAL", "Internal error encountered.")
        if fault == "unavailable":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        try:
            if method == "checkCompatibility":
                return 200, self._compatibility(body)
            return self._run_report(body)
        except _BadRequest as refused:
            return _error(400, "INVALID_ARGUMENT", str(refused))

    # ---- runReport
    def _run_report(self, body: dict) -> tuple[int, dict]:
        dims, metrics = _names(body.get("dimensions")), _names(body.get("metrics"))
        _check_fields(dims, metrics)
        start, end = self._date_range(body.get("dateRanges"))
        limit, offset = int(body.get("limit") or DEFAULT_LIMIT), int(body.get("offset") or 0)
        if limit < 0 or limit > MAX_LIMIT or offset < 0:
            raise _BadRequest(f"limit must be positive and at most {MAX_LIMIT}; offset must not "
                              "be negative.")
        with self._lock:
            if self.daily_tokens is not None and self.tokens_used >= self.daily_tokens:
                return _error(429, "RESOURCE_EXHAUSTED", DAILY)
            self.tokens_used += 1
            used = self.tokens_used
        table = self._rows(dims, metrics, start, end, body.get("orderBys"))
        answer: dict[str, Any] = {
            "dimensionHeaders": [{"name": d} for d in dims],
            "metricHeaders": [{"name": m, "type": METRICS[m][1]} for m in metrics]}
        page = table.slice(offset, limit or DEFAULT_LIMIT)
        if page.num_rows:
            answer["rows"] = _json_rows(page, dims, metrics)
        for aggregation in body.get("metricAggregations") or []:
            key, function, marker = AGGREGATES[aggregation]
            answer[key] = [{"dimensionValues": [{"value": marker} for _ in dims],
                            "metricValues": [{"value": _text(getattr(pc, function)(table[m]))}
                                             for m in metrics]}]
        if table.num_rows:
            answer["rowCount"] = table.num_rows
        answer["metadata"] = self._metadata(start, end)
        if body.get("returnPropertyQuota"):
            answer["propertyQuota"] = self._quota(used)
        answer["kind"] = "analyticsData#runReport"
        return 200, answer

    def _rows(self, dims: list[str], metrics: list[str], start: date, end: date,
              order_bys: Any) -> pa.Table:
        table = self.tables[_table_of(dims, metrics)]
        table = table.filter(pc.and_(pc.greater_equal(table["date"], pa.scalar(start)),
                                     pc.less_equal(table["date"], pa.scalar(end))))
        if set(dims) != set(_table_dims(table)):  # fewer dimensions: GA aggregates
            grouped = table.group_by(dims).aggregate([(m, "sum") for m in metrics])
            table = grouped.rename_columns([c.removesuffix("_sum") for c in grouped.column_names])
        else:
            table = table.select(dims + metrics)
        keys = _sort_keys(order_bys, dims)
        return table.sort_by(keys) if keys else table

    def _date_range(self, ranges: Any) -> tuple[date, date]:
        if not isinstance(ranges, list) or len(ranges) != 1:
            raise _BadRequest("FakeGa4 serves exactly one dateRanges entry.")
        start, end = (self._day(ranges[0].get(k)) for k in ("startDate", "endDate"))
        if start > end:
            raise _BadRequest("startDate must not be after endDate.")
        return start, end

    def _day(self, text: Any) -> date:
        relative = re.match(r"^(\d+)daysAgo$", str(text))
        if text == "today":
            return self.today
        if text == "yesterday":
            return self.today - timedelta(days=1)
        if relative:
            return self.today - timedelta(days=int(relative.group(1)))
        try:
            return date.fromisoformat(str(text))
        except ValueError:
            raise _BadRequest(f"Invalid date: {text}. Date must be in the format YYYY-MM-DD, "
                              "NdaysAgo, yesterday, or today.") from None

    def _metadata(self, start: date, end: date) -> dict:
        def covered(days: set[date]) -> bool:
            return any(start <= d <= end for d in days)
        metadata: dict[str, Any] = {"currencyCode": self.currency, "timeZone": self.time_zone}
        if covered(self.data_loss_days):
            metadata["dataLossFromOtherRow"] = True
        if covered(self.threshold_days):
            metadata["subjectToThresholding"] = True
        if covered(self.sampled_days):
            metadata["samplingMetadatas"] = [{"samplesReadCount": "1000000",
                                              "samplingSpaceSize": "8000000"}]
        return metadata

    def _quota(self, used: int) -> dict:
        daily = self.daily_tokens if self.daily_tokens is not None else DAILY_LIMIT
        return {"tokensPerDay": {"consumed": 1, "remaining": max(daily - used, 0)},
                "tokensPerHour": {"consumed": 1, "remaining": HOURLY_LIMIT - used},
                "concurrentRequests": {"remaining": 10},
                "serverErrorsPerProjectPerHour": {"remaining": 10},
                "potentiallyThresholdedRequestsPerHour": {"remaining": 120},
                "tokensPerProjectPerHour": {"consumed": 1, "remaining": 14_000 - used}}

    # ---- checkCompatibility
    def _compatibility(self, body: dict) -> dict:
        dims, metrics = _names(body.get("dimensions")), _names(body.get("metrics"))
        _check_fields(dims, metrics, serve=False)
        wanted = body.get("compatibilityFilter")
        item_dims, event_metrics = ITEM_SCOPED & set(dims), EVENT_SCOPED & set(metrics)

        def verdict(compatible: bool) -> str:
            return "COMPATIBLE" if compatible else "INCOMPATIBLE"
        dimensions = [{"dimensionMetadata": {"apiName": d, "uiName": d, "description": d},
                       "compatibility": verdict(not (d in ITEM_SCOPED and event_metrics))}
                      for d in (*DIMENSIONS, *OTHER_DIMENSIONS)]
        metric_types = {**{m: t for m, (_, t) in METRICS.items()}, **OTHER_METRICS}
        measures = [{"metricMetadata": {"apiName": m, "uiName": m, "description": m, "type": t},
                     "compatibility": verdict(not (m in EVENT_SCOPED and item_dims))}
                    for m, t in metric_types.items()]
        if wanted:
            dimensions = [d for d in dimensions if d["compatibility"] == wanted]
            measures = [m for m in measures if m["compatibility"] == wanted]
        return {"dimensionCompatibilities": dimensions, "metricCompatibilities": measures}


def _error(code: int, status: str, message: str) -> tuple[int, dict]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def _names(items: Any) -> list[str]:
    return [str((i or {}).get("name")) for i in items or []]


def _check_fields(dims: list[str], metrics: list[str], serve: bool = True) -> None:
    """Google's 400s: an unknown field, then (runReport) an incompatible combination."""
    known_dims = set(DIMENSIONS) | (set() if serve else set(OTHER_DIMENSIONS))
    known_metrics = set(METRICS) | (set() if serve else set(OTHER_METRICS))
    for d in dims:
        if d not in known_dims:
            raise _BadRequest(f"Field {d} is not a valid dimension. For a list of valid "
                              "dimensions and metrics, see https://developers.google.com/"
                              "analytics/devguides/reporting/data/v1/api-schema ")
    for m in metrics:
        if m not in known_metrics:
            raise _BadRequest(f"Field {m} is not a valid metric. For a list of valid "
                              "dimensions and metrics, see https://developers.google.com/"
                              "analytics/devguides/reporting/data/v1/api-schema ")
    if not serve:
        return  # checkCompatibility answers an incompatible request, runReport refuses it
    if not metrics:
        raise _BadRequest("At least one metric is required.")
    clash = sorted(EVENT_SCOPED & set(metrics)) if ITEM_SCOPED & set(dims) else []
    if clash:
        raise _BadRequest(f"Please remove {', '.join(clash)} to make the request compatible. "
                          "The request's dimensions & metrics are incompatible. To learn more, "
                          "see https://ga-dev-tools.google/ga4/dimensions-metrics-explorer/")


def _table_of(dims: list[str], metrics: list[str]) -> str:
    serving = set(TABLES)
    for field in dims:
        serving &= set(DIMENSIONS[field])
    for field in metrics:
        serving &= {METRICS[field][0]}
    if not serving:
        raise _BadRequest("FakeGa4 serves item fields and session fields in separate reports.")
    return sorted(serving)[0]


def _table_dims(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c in DIMENSIONS]


def _sort_keys(order_bys: Any, dims: list[str]) -> list[tuple[str, str]]:
    keys = []
    for order in order_bys or []:
        name = ((order or {}).get("dimension") or {}).get("dimensionName")
        if name not in dims:
            raise _BadRequest(f"orderBys names {name}, which is not a dimension of the request.")
        keys.append((name, "descending" if order.get("desc") else "ascending"))
    return keys or [(d, "ascending") for d in dims]


def _strings(column: pa.ChunkedArray) -> list[str]:
    if pa.types.is_date(column.type):
        return pc.strftime(column, format="%Y%m%d").to_pylist()
    return [_text(v) for v in column.to_pylist()]


def _text(value: Any) -> str:
    """A metric or dimension value as GA writes it: a string; whole numbers without ".0"."""
    value = value.as_py() if isinstance(value, pa.Scalar) else value
    if value is None:
        return "(not set)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_rows(page: pa.Table, dims: list[str], metrics: list[str]) -> list[dict]:
    dim_values = [_strings(page[d]) for d in dims]
    metric_values = [_strings(page[m]) for m in metrics]
    return [{"dimensionValues": [{"value": column[i]} for column in dim_values],
             "metricValues": [{"value": column[i]} for column in metric_values]}
            for i in range(page.num_rows)]
