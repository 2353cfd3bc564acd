"""A fake Google Ads API: an in-process `grpc.server` on 127.0.0.1 answering
`/google.ads.googleads.v26.services.GoogleAdsService/SearchStream` with the library's own
message types, serving a demo shop's `raw_google_ads` tables.

What it checks, as Google does: the bearer token (`authorization` metadata), the customer id,
the `login-customer-id` header when the account is reached through a manager, and the GAQL
(resource, selected fields against the pinned version's `GoogleAdsRow`, the `segments.date
BETWEEN` range). Errors come as Google sends them: a `GoogleAdsFailure` in the
`google.ads.googleads.v26.errors.googleadsfailure-bin` trailer plus `request-id`, with the
status Google uses (INVALID_ARGUMENT for query errors, UNAUTHENTICATED, PERMISSION_DENIED,
RESOURCE_EXHAUSTED for quota). Scripted faults (`Fault`) revoke the token, exhaust the temporary
or the daily quota, or cut a stream after N batches.

Rows as Google returns them: 10,000 a batch, a `field_mask` of the selected fields, resource
names on the resources, `segments.product_item_id` in lower case, unset fields where the demo
has nulls. Limits of the fake (answered UNIMPLEMENTED, not as a query error): metrics without
`segments.date`, a WHERE clause other than the date range, fields the demo does not hold.
"""

from __future__ import annotations

import base64
import operator
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable, Iterator

import grpc
import pyarrow as pa
import pyarrow.compute as pc
from google.ads.googleads.v26.errors.types.errors import (ErrorCode, ErrorDetails, GoogleAdsError,
                                                          GoogleAdsFailure, QuotaErrorDetails)
from google.ads.googleads.v26.services.types.google_ads_service import (
    GoogleAdsRow, SearchGoogleAdsStreamRequest, SearchGoogleAdsStreamResponse)
from google.protobuf.descriptor import FieldDescriptor

from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.sources.google_ads import API_VERSION

SERVICE = f"google.ads.googleads.{API_VERSION}.services.GoogleAdsService"
METHOD = f"/{SERVICE}/SearchStream"
FAILURE_KEY = f"google.ads.googleads.{API_VERSION}.errors.googleadsfailure-bin"
TABLES = {"campaign": "campaign_daily", "shopping_performance_view": "shopping_product_daily",
          "keyword_view": "keyword_daily", "search_term_view": "search_term_daily"}
ROW_PB = GoogleAdsRow.pb()
RESPONSE_PB = SearchGoogleAdsStreamResponse.pb()
ROW = ROW_PB.DESCRIPTOR
BATCH_ROWS = 10_000

_QUERY = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>\w+)"
                    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>.+?))?"
                    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.I | re.S)
_BETWEEN = re.compile(r"^segments\.date\s+BETWEEN\s+'([^']*)'\s+AND\s+'([^']*)'$", re.I)


@dataclass
class Fault:
    """A scripted failure for the next `times` matching calls: `revoked` (OAUTH_TOKEN_REVOKED),
    `temporary_quota` (RESOURCE_TEMPORARILY_EXHAUSTED, with `retry_delay_s`), `daily_quota`
    (RESOURCE_EXHAUSTED), `abort` (UNAVAILABLE, no failure), `internal` (INTERNAL_ERROR); sent
    after `after_batches` batches of the answer."""
    kind: str
    after_batches: int = 0
    retry_delay_s: float | None = None
    resource: str | None = None  # only queries FROM this resource (None: any)
    times: int = 1


@dataclass
class Call:
    """What one SearchStream call asked (never the token)."""
    customer_id: str
    login_customer_id: str | None
    developer_token_sent: bool
    query: str
    resource: str | None = None
    fields: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    request_id: str = ""
    batches_sent: int = 0
    status: str = "OK"


class _Abort(Exception):
    def __init__(self, status: grpc.StatusCode, message: str, failure: GoogleAdsFailure | None):
        super().__init__(message)
        self.status, self.message, self.failure = status, message, failure


@dataclass
class FakeGoogleAds:
    shop: DemoShop = field(repr=False)
    customer_id: str = "1234567890"
    login_customer_id: str | None = None  # the manager the account must be reached through
    token: str = "fake-access-token"
    time_zone: str = "America/New_York"
    batch_rows: int = BATCH_ROWS
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    revoked: bool = False
    _server: Any = field(default=None, repr=False)
    _port: int = 0
    _tables: dict[str, pa.Table] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Benchmarks: Google builds its answers on its own servers, so the time the fake takes to
    # build protobuf rows is not the client's. With the cache on, the messages of each query
    # are built once and served again to the same query (request ids stay the first call's).
    cache_batches: bool = False
    _batch_cache: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    # --- lifecycle ---
    def start(self) -> FakeGoogleAds:
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "SearchStream": grpc.unary_stream_rpc_method_handler(
                self._search_stream, request_deserializer=SearchGoogleAdsStreamRequest.deserialize,
                response_serializer=RESPONSE_PB.SerializeToString)})
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((handler,))
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> FakeGoogleAds:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self._port}"

    def served(self, table: str) -> pa.Table:
        """The whole demo table as this fake serves it (product item ids in lower case, as
        Google returns them)."""
        with self._lock:
            if table not in self._tables:
                whole = pa.concat_tables(list(self.shop.iter_table("raw_google_ads", table)))
                if "segments.product_item_id" in whole.column_names:
                    i = whole.column_names.index("segments.product_item_id")
                    whole = whole.set_column(i, "segments.product_item_id",
                                             pc.utf8_lower(whole["segments.product_item_id"]))
                self._tables[table] = whole
            return self._tables[table]

    def serve(self, table: str, rows: pa.Table) -> None:
        """Serve `rows` as `table` instead of the demo's (a case the demo does not hold)."""
        with self._lock:
            self._tables[table] = rows

    # --- the RPC ---
    def _search_stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        metadata = dict(context.invocation_metadata())
        call = Call(request.customer_id, metadata.get("login-customer-id"),
                    "developer-token" in metadata, request.query)
        with self._lock:
            self.calls.append(call)
            call.request_id = request_id = f"fake-{len(self.calls)}"
        try:
            self._check_access(request.customer_id, metadata)
            rows = self._rows(call)
            fault = self._take_fault(call.resource)
            for batch in self._answer(call, rows):
                if fault is not None and call.batches_sent == fault.after_batches:
                    raise _fault_abort(fault)
                yield batch
                call.batches_sent += 1
            if fault is not None:
                raise _fault_abort(fault)
        except _Abort as abort:
            call.status = abort.status.name
            trailers = [("request-id", request_id)]
            if abort.failure is not None:
                abort.failure.request_id = request_id
                trailers.insert(0, (FAILURE_KEY, GoogleAdsFailure.serialize(abort.failure)))
            context.set_trailing_metadata(tuple(trailers))
            context.abort(abort.status, abort.message)

    def _check_access(self, customer_id: str, metadata: dict[str, str]) -> None:
        if self.revoked:
            raise _auth("OAUTH_TOKEN_REVOKED", "The OAuth token has been revoked.")
        authorization = metadata.get("authorization", "")
        if not authorization.startswith("Bearer "):
            raise _auth("OAUTH_TOKEN_HEADER_INVALID", "Oauth token HTTP header is malformed.")
        if authorization != f"Bearer {self.token}":
            raise _auth("OAUTH_TOKEN_INVALID", "Oauth token is invalid.")
        if customer_id != self.customer_id:
            raise _denied("USER_PERMISSION_DENIED",
                          "User doesn't have permission to access customer.")
        login = metadata.get("login-customer-id")
        if self.login_customer_id is not None and login is None:
            raise _denied("USER_PERMISSION_DENIED",
                          "User doesn't have permission to access customer. Note: If you're "
                          "accessing a client customer, the manager's customer id must be set "
                          "in the 'login-customer-id' header.")
        if login is not None and login not in (self.login_customer_id, self.customer_id):
            raise _denied("INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION",
                          "The login customer id cannot serve the customer in the request.")

    def _take_fault(self, resource: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.resource in (None, resource):
                    fault.times -= 1
                    return fault
        return None

    # --- GAQL ---
    def _rows(self, call: Call) -> pa.Table:
        match = _QUERY.match(call.query)
        if match is None:
            raise _query("UNEXPECTED_INPUT", "Error in query: unexpected input.")
        call.resource = resource = match["resource"]
        call.fields = fields = tuple(f.strip() for f in match["fields"].split(","))
        for name in fields:
            if _descriptor(name) is None:
                raise _query("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{name}'.")
        if resource not in ROW.fields_by_name:
            raise _query("BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
                         f"Error in query: invalid resource type '{resource}'.")
        if resource == "customer":
            return self._customer(fields, match["where"])
        if resource not in TABLES:
            raise _unimplemented(f"the fake serves no '{resource}' report")
        table = self.served(TABLES[resource])
        missing = [f for f in fields if f not in table.column_names]
        if missing:
            raise _unimplemented(f"the fake does not serve {', '.join(missing)}")
        call.start, call.end = _date_range(match["where"], "segments.date" in fields)
        if call.start is None and any(f.startswith("metrics.") for f in fields):
            raise _unimplemented("the fake serves metrics by day only (select segments.date)")
        if call.start is not None:
            days = table["segments.date"]
            table = table.filter(pc.and_(pc.greater_equal(days, pa.scalar(call.start)),
                                         pc.less_equal(days, pa.scalar(call.end))))
        if call.start is None:
            table = table.select(list(fields)).group_by(list(fields)).aggregate([])
        return table.select(list(fields))

    def _customer(self, fields: tuple[str, ...], where: str | None) -> pa.Table:
        values = {"customer.id": int(self.customer_id), "customer.time_zone": self.time_zone,
                  "customer.currency_code": "USD", "customer.descriptive_name": "Demo shop"}
        unknown = [f for f in fields if f not in values]
        if unknown or where:
            raise _unimplemented("the fake's customer resource has only id, time_zone, "
                                 "currency_code and descriptive_name, unfiltered")
        return pa.table({f: [values[f]] for f in fields})

    # --- responses ---
    def _answer(self, call: Call, rows: pa.Table) -> Iterable[Any]:
        if not self.cache_batches:
            return self._batches(call, rows)
        with self._lock:
            cached = self._batch_cache.get(call.query)
        if cached is None:
            cached = list(self._batches(call, rows))
            with self._lock:
                self._batch_cache[call.query] = cached
        return cached

    def _batches(self, call: Call, rows: pa.Table) -> Iterator[Any]:
        rows = _with_resource_names(rows, call.resource or "", self.customer_id)
        for offset in range(0, rows.num_rows, self.batch_rows):
            piece = rows.slice(offset, self.batch_rows)
            response = RESPONSE_PB(request_id=call.request_id)
            response.field_mask.paths.extend(call.fields)
            results = [response.results.add() for _ in range(piece.num_rows)]
            holders: dict[str, list[Any]] = {"": results}
            for name, column in zip(piece.column_names, piece.columns):
                path, _, leaf = name.rpartition(".")
                if path not in holders:
                    holders[path] = list(map(operator.attrgetter(path), results))
                _put(holders[path], leaf, _descriptor(name), column.to_pylist())
            yield response


def _descriptor(name: str) -> FieldDescriptor | None:
    message, found = ROW, None
    for part in name.split("."):
        if message is None or part not in message.fields_by_name:
            return None
        found = message.fields_by_name[part]
        message = found.message_type
    return found if found is not None and found.message_type is None else None


def _put(holders: list[Any], leaf: str, descriptor: FieldDescriptor, values: list[Any]) -> None:
    """Set one field on the messages holding it (None left unset, enums by name)."""
    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        numbers = {v.name: v.number for v in descriptor.enum_type.values}
        values = [None if v is None else numbers[v] for v in values]
    elif values and isinstance(next((v for v in values if v is not None), None), date):
        values = [None if v is None else v.isoformat() for v in values]
    for holder, value in zip(holders, values):
        if value is not None:
            setattr(holder, leaf, value)


def _with_resource_names(rows: pa.Table, resource: str, customer: str) -> pa.Table:
    """The resource names Google sets on the resources a row carries, as extra columns."""
    base = f"customers/{customer}"
    cols = rows.column_names

    def joined(*parts: Any) -> pa.Array:
        return pc.binary_join_element_wise(*[p if isinstance(p, str) else pc.cast(p, pa.string())
                                             for p in parts], "")
    names: dict[str, Any] = {}
    if "campaign.id" in cols:
        names["campaign.resource_name"] = joined(f"{base}/campaigns/", rows["campaign.id"])
    if "ad_group.id" in cols:
        names["ad_group.resource_name"] = joined(f"{base}/adGroups/", rows["ad_group.id"])
    criterion = ("ad_group.id" in cols and "ad_group_criterion.criterion_id" in cols)
    if criterion:
        ids = (rows["ad_group.id"], "~", rows["ad_group_criterion.criterion_id"])
        names["ad_group_criterion.resource_name"] = joined(f"{base}/adGroupCriteria/", *ids)
        if resource == "keyword_view":
            names["keyword_view.resource_name"] = joined(f"{base}/keywordViews/", *ids)
    if resource == "search_term_view" and {"campaign.id", "ad_group.id",
                                           "search_term_view.search_term"} <= set(cols):
        terms = pa.array([base64.urlsafe_b64encode(t.encode()).rstrip(b"=").decode()
                          for t in rows["search_term_view.search_term"].to_pylist()])
        names["search_term_view.resource_name"] = joined(
            f"{base}/searchTermViews/", rows["campaign.id"], "~", rows["ad_group.id"], "~", terms)
    if resource == "shopping_performance_view":
        names["shopping_performance_view.resource_name"] = pa.array(
            [f"{base}/shoppingPerformanceView"] * rows.num_rows)
    if resource == "customer":
        names["customer.resource_name"] = pa.array([base] * rows.num_rows)
    for name, values in names.items():
        rows = rows.append_column(name, values)
    return rows


def _date_range(where: str | None, date_selected: bool) -> tuple[date | None, date | None]:
    if where is None:
        if date_selected:
            raise _query("EXPECTED_FILTERS_ON_DATE_RANGE",
                         "Error in query: a finite date range is required when segments.date "
                         "is selected.")
        return None, None
    between = _BETWEEN.match(where.strip())
    if between is None:
        raise _unimplemented("the fake filters on `segments.date BETWEEN 'a' AND 'b'` only")
    try:
        start, end = (date.fromisoformat(d) for d in between.groups())
    except ValueError:
        raise _query("INVALID_DATE_FORMAT", "Error in query: invalid date format.") from None
    if start > end:
        raise _query("INVALID_VALUE_WITH_BETWEEN_OPERATOR",
                     "Error in query: the first date is after the second.")
    return start, end


# --- failures as Google sends them ---

def _failure(message: str, details: ErrorDetails | None = None, **code: Any) -> GoogleAdsFailure:
    error = GoogleAdsError(error_code=ErrorCode(**code), message=message)
    if details is not None:
        error.details = details
    return GoogleAdsFailure(errors=[error])


def _auth(code: str, message: str) -> _Abort:
    return _Abort(grpc.StatusCode.UNAUTHENTICATED, "Request is missing required authentication "
                  "credential.", _failure(message, authentication_error=code))


def _denied(code: str, message: str) -> _Abort:
    return _Abort(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission",
                  _failure(message, authorization_error=code))


def _query(code: str, message: str) -> _Abort:
    return _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Request contains an invalid argument.",
                  _failure(message, query_error=code))


def _unimplemented(what: str) -> _Abort:
    return _Abort(grpc.StatusCode.UNIMPLEMENTED, f"fake Google Ads: {what}", None)


def _fault_abort(fault: Fault) -> _Abort:
    if fault.kind == "revoked":
        return _auth("OAUTH_TOKEN_REVOKED", "The OAuth token has been revoked.")
    if fault.kind == "temporary_quota":
        delay = fault.retry_delay_s
        details = (ErrorDetails(quota_error_details=QuotaErrorDetails(
            rate_scope="DEVELOPER", rate_name="Number of operations for basic access",
            retry_delay=timedelta(seconds=delay))) if delay is not None else None)
        return _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted.",
                      _failure("Too many requests. Retry in a little while.", details,
                               quota_error="RESOURCE_TEMPORARILY_EXHAUSTED"))
    if fault.kind == "daily_quota":
        return _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted.",
                      _failure("Too many requests. Retry in 24 hours.",
                               quota_error="RESOURCE_EXHAUSTED"))
    if fault.kind == "internal":
        return _Abort(grpc.StatusCode.INTERNAL, "Internal error encountered.",
                      _failure("An internal error has occurred.", internal_error="INTERNAL_ERROR"))
    if fault.kind == "abort":
        return _Abort(grpc.StatusCode.UNAVAILABLE, "Connection reset by peer", None)
    raise ValueError(f"unknown fault kind {fault.kind!r}")
