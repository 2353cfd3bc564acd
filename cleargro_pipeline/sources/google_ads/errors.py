"""Google Ads failures, mapped by kind from the `GoogleAdsFailure` the API sends.

What the installed library (google-ads 34, google-api-core 2.44) really raises while a
`search_stream` is iterated (checked against a gRPC server, tests/fake_google_ads.py):
- a failure with a `GoogleAdsFailure` trailer and any status but INTERNAL and RESOURCE_EXHAUSTED:
  `google.ads.googleads.errors.GoogleAdsException` (its `failure` parsed, `request_id` set);
- RESOURCE_EXHAUSTED (both quota errors) and INTERNAL: the library's ExceptionInterceptor lets
  the raw gRPC error through and api-core turns it into `google.api_core.exceptions.
  ResourceExhausted` / `InternalServerError`; the failure is still in the call's trailers
  (`error.response.trailing_metadata()`), so it is parsed here;
- a stream cut mid-way (UNAVAILABLE) or a deadline: `ServiceUnavailable`, `DeadlineExceeded`;
- an error on the first message is raised by the `search_stream()` call itself (api-core
  prefetches it), a later one while iterating.

The kinds: credentials (authentication and authorization errors: no retry until the merchant
reconnects), the daily quota (`QuotaExhausted`: the day is over for this account), transient
(temporary quota, unavailable, internal, deadline: back off and re-read), query errors (our
bug: fail loudly naming the field), anything else (fails, naming the codes). Messages name the
customer id, error codes, fields and the request id; never a token or a data value.
"""

from __future__ import annotations

import re

import grpc
from google.ads.googleads.errors import GoogleAdsException
from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure
from google.api_core import exceptions as core

from cleargro_pipeline.errors import CleargroError, CredentialsRejected
from cleargro_pipeline.sources.google_ads import API_VERSION

FAILURE_KEY = f"google.ads.googleads.{API_VERSION}.errors.googleadsfailure-bin"
CREDENTIAL_KINDS = ("authentication_error", "authorization_error")
QUERY_KINDS = ("query_error", "request_error", "field_error", "field_mask_error")
TEMPORARY_QUOTA = ("RESOURCE_TEMPORARILY_EXHAUSTED", "EXCESSIVE_SHORT_TERM_QUERY_RESOURCE_CONSUMPTION")
TRANSIENT_STATUSES = (core.ServiceUnavailable, core.InternalServerError, core.DeadlineExceeded)
_QUOTED_FIELD = re.compile(r"'([a-z_]+(?:\.[a-z_]+)+)'")


class GoogleAdsError(CleargroError):
    """Google Ads refused a query or could not answer it."""


class GoogleAdsCredentialsRejected(CredentialsRejected, GoogleAdsError):
    """An authentication or authorization error: no sync succeeds until the merchant reconnects
    (or grants access); raises `credentials_invalid`."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class QuotaExhausted(GoogleAdsError):
    """The daily operations quota is used up (QuotaError.RESOURCE_EXHAUSTED): the day's sync
    ends here (`source_quota`), retrying only burns more of tomorrow's."""


class GoogleAdsQueryError(GoogleAdsError):
    """Google rejected our GAQL (a field renamed in a new version, a typo): a bug, not retried."""

    def __init__(self, message: str, fields: tuple[str, ...]):
        super().__init__(message)
        self.fields = fields


class GoogleAdsUnavailable(GoogleAdsError):
    """Still failing transiently after every retry the bound allows."""


class Transient(Exception):
    """A failure worth retrying (the whole query) after `retry_delay` seconds, if Google said."""

    def __init__(self, reason: str, retry_delay: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_delay = reason, retry_delay


def classify(error: BaseException, customer_id: str) -> BaseException:
    """The error to raise (or `Transient` to retry) for what the client library raised."""
    failure = failure_of(error)
    if failure is not None and failure.errors:
        return _from_failure(failure, customer_id, _status(error))
    if isinstance(error, (core.ResourceExhausted, *TRANSIENT_STATUSES)):
        return Transient(type(error).__name__)
    if isinstance(error, (core.Unauthenticated, core.PermissionDenied)):
        name = type(error).__name__
        return GoogleAdsCredentialsRejected(
            f"Google Ads customer {customer_id}: the credentials were refused ({name})", name)
    if isinstance(error, core.GoogleAPICallError):
        return GoogleAdsError(f"Google Ads customer {customer_id}: the query failed "
                              f"({type(error).__name__})")
    return error


def failure_of(error: BaseException) -> GoogleAdsFailure | None:
    """The GoogleAdsFailure the API sent with `error`, from the library's exception or from the
    gRPC call's trailers (for the statuses the library does not convert)."""
    if isinstance(error, GoogleAdsException):
        failure = error.failure
        return failure if isinstance(failure, GoogleAdsFailure) else GoogleAdsFailure.wrap(failure)
    call = getattr(error, "response", None)
    trailers = call.trailing_metadata() if isinstance(call, grpc.Call) else None
    for key, value in trailers or ():
        if key == FAILURE_KEY:
            return GoogleAdsFailure.deserialize(value)
    return None


def _status(error: BaseException) -> str:
    call = error.error if isinstance(error, GoogleAdsException) else getattr(error, "response", None)
    code = call.code() if isinstance(call, grpc.Call) else None
    return code.name if code is not None else type(error).__name__


def _from_failure(failure: GoogleAdsFailure, customer_id: str, status: str) -> BaseException:
    codes = [_code(e) for e in failure.errors]
    kinds = {kind for kind, _ in codes}
    names = ", ".join(f"{kind}.{name}" for kind, name in codes)
    where = f"Google Ads customer {customer_id}"
    request = f" (request {failure.request_id})" if failure.request_id else ""
    if kinds & set(CREDENTIAL_KINDS):
        code = next(name for kind, name in codes if kind in CREDENTIAL_KINDS)
        return GoogleAdsCredentialsRejected(
            f"{where}: Google refused access ({names}){request}; the merchant must reconnect "
            "Google Ads or grant this login access to the account", code)
    quota = [name for kind, name in codes if kind == "quota_error"]
    if "RESOURCE_EXHAUSTED" in quota:
        return QuotaExhausted(f"{where}: the daily Google Ads API quota is used up{request}; "
                              "the sync resumes tomorrow")
    if any(name in TEMPORARY_QUOTA for name in quota) or kinds == {"internal_error"}:
        return Transient(names, _retry_delay(failure))
    if kinds & set(QUERY_KINDS):
        fields = tuple(dict.fromkeys(f for e in failure.errors for f in _fields_named(e)))
        messages = "; ".join(e.message for e in failure.errors if e.message)
        return GoogleAdsQueryError(f"{where}: the query was rejected ({names}) naming "
                                   f"{', '.join(fields) or 'no field'}: {messages}{request}", fields)
    return GoogleAdsError(f"{where}: the query failed with {status} ({names}){request}")


def _code(error) -> tuple[str, str]:
    """(kind, code name) of one GoogleAdsError: ('quota_error', 'RESOURCE_EXHAUSTED')."""
    pb = type(error.error_code).pb(error.error_code)
    which = pb.WhichOneof("error_code")
    if which is None:
        return "unknown", "UNKNOWN"
    number = getattr(pb, which)
    field = pb.DESCRIPTOR.fields_by_name[which]
    value = field.enum_type.values_by_number.get(number)
    return which, value.name if value is not None else str(number)


def _fields_named(error) -> list[str]:
    """The GAQL fields a query error names: its trigger, or the quoted field in its message
    ("Unrecognized field in the query: 'metrics.fake_field'.")."""
    found = _QUOTED_FIELD.findall(error.message or "")
    trigger = error.trigger.string_value if "trigger" in error else ""
    return ([trigger] if trigger and _QUOTED_FIELD.fullmatch(f"'{trigger}'") else []) + found


def _retry_delay(failure: GoogleAdsFailure) -> float | None:
    """The longest `QuotaErrorDetails.retry_delay` Google asked for, in seconds."""
    delays = [e.details.quota_error_details.retry_delay for e in failure.errors
              if "details" in e and "quota_error_details" in e.details]
    seconds = [d.total_seconds() if hasattr(d, "total_seconds") else d.seconds + d.nanos / 1e9
               for d in delays if d]
    return max(seconds) if seconds else None
