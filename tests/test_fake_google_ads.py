"""The fake Google Ads server (tests/fake_google_ads.py) speaks Google's wire format: its
answers and failures, read over a bare gRPC channel with the library's message types, have
the shapes of the bodies Google publishes (../shared/fixtures/google_ads), and it refuses what
Google refuses."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import grpc
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure
from google.ads.googleads.v26.services.types.google_ads_service import (
    SearchGoogleAdsStreamRequest, SearchGoogleAdsStreamResponse)
from google.protobuf import json_format

from cleargro_pipeline.demo.generator import DemoShop

from fake_google_ads import FAILURE_KEY, METHOD, Fault, FakeGoogleAds

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "google_ads"
END = date(2026, 11, 27)
LAST_WEEK = "segments.date BETWEEN '2026-11-21' AND '2026-11-27'"


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", end_date=END)


@pytest.fixture
def fake(shop: DemoShop) -> Iterator[FakeGoogleAds]:
    with FakeGoogleAds(shop) as server:
        yield server


@pytest.fixture
def fixtures() -> Path:
    assert FIXTURES.exists(), f"{FIXTURES} is missing: the shared fixtures sit beside the checkout"
    return FIXTURES


def stream(fake: FakeGoogleAds, query: str, metadata: list[tuple[str, str]] | None = None,
           customer: str | None = None) -> list[Any]:
    """The answer's batches as plain protobuf, over a bare channel (no Ads client library)."""
    with grpc.insecure_channel(fake.endpoint) as channel:
        call = channel.unary_stream(METHOD, request_serializer=SearchGoogleAdsStreamRequest.serialize,
                                    response_deserializer=SearchGoogleAdsStreamResponse.pb().FromString)
        headers = [("authorization", f"Bearer {fake.token}")] if metadata is None else metadata
        request = SearchGoogleAdsStreamRequest(customer_id=customer or fake.customer_id, query=query)
        return list(call(request, metadata=headers))


def failure(fake: FakeGoogleAds, query: str, **kwargs: Any) -> tuple[grpc.StatusCode, dict]:
    """The status and the GoogleAdsFailure (as Google's JSON) of a failing call."""
    with pytest.raises(grpc.RpcError) as raised:
        stream(fake, query, **kwargs)
    trailers = dict(raised.value.trailing_metadata())
    found = GoogleAdsFailure.deserialize(trailers[FAILURE_KEY])
    assert trailers["request-id"] == found.request_id
    return raised.value.code(), json_format.MessageToDict(GoogleAdsFailure.pb(found))


def shape(value: Any) -> Any:
    """The keys of a JSON value, nested, without the values."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# --- answers ---

def test_an_answer_has_the_shape_of_googles_stream_body(fake, fixtures):
    published = json.loads((fixtures / "stream_search_response.json").read_text())
    # the published body is a SearchGoogleAdsStreamResponse of this version too
    json_format.ParseDict(published[0], SearchGoogleAdsStreamResponse.pb()())
    batches = stream(fake, "SELECT campaign.id, campaign.name FROM campaign ORDER BY campaign.id")
    ours = json_format.MessageToDict(batches[0])
    assert ours.pop("requestId").startswith("fake-")  # Google's stream bodies carry one too
    assert shape(ours) == shape(published[0])
    assert ours["fieldMask"] == published[0]["fieldMask"] == "campaign.id,campaign.name"
    first = ours["results"][0]["campaign"]
    assert first["resourceName"] == f"customers/{fake.customer_id}/campaigns/{first['id']}"


def test_a_search_term_row_has_the_shape_of_a_published_one(fake, fixtures):
    literal = (fixtures / "search_term_view_row_with_metrics.parserRest-spec-L9-33.ts.txt").read_text()
    body = literal.strip().removeprefix("decamelizeKeys(").removesuffix(")")
    body = re.sub(r"(\w+):\s", r'"\1": ', body)
    published = json.loads(re.sub(r",(\s*})", r"\1", body))
    batches = stream(fake, "SELECT campaign.id, ad_group.id, search_term_view.search_term, "
                           "metrics.clicks, metrics.cost_micros, metrics.impressions, segments.date "
                           f"FROM search_term_view WHERE {LAST_WEEK}")
    row = json_format.MessageToDict(batches[0].results[0])
    assert set(row) == set(published)
    assert set(row["metrics"]) <= set(published["metrics"])
    assert all(isinstance(row["metrics"][k], str) for k in ("clicks", "costMicros", "impressions"))
    pattern = r"customers/\d{10}/searchTermViews/\d+~\d+~[A-Za-z0-9_-]+"
    assert re.fullmatch(pattern, published["searchTermView"]["resourceName"])
    assert re.fullmatch(pattern, row["searchTermView"]["resourceName"])
    assert row["adGroup"]["resourceName"] == f"customers/{fake.customer_id}/adGroups/{row['adGroup']['id']}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["segments"]["date"])


def test_batches_hold_ten_thousand_rows_of_the_asked_days(fake, shop):
    batches = stream(fake, "SELECT segments.date, campaign.id, segments.product_item_id, "
                           "metrics.clicks FROM shopping_performance_view "
                           "WHERE segments.date BETWEEN '2026-09-01' AND '2026-11-27'")
    sizes = [len(b.results) for b in batches]
    assert len(sizes) > 1 and all(s == 10_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 10_000
    days = {r.segments.date for b in batches for r in b.results}
    assert min(days) == "2026-09-01" and max(days) == "2026-11-27"
    items = [r.segments.product_item_id for r in batches[0].results]
    assert all(i == i.lower() and i.startswith("shopify_us_") for i in items)  # as Google returns


def test_unset_fields_stay_unset(fake):
    fake.serve("campaign_daily", without_shopping_impression_share(fake.served("campaign_daily")))
    batches = stream(fake, "SELECT segments.date, campaign.id, campaign.advertising_channel_type, "
                           f"metrics.search_impression_share FROM campaign WHERE {LAST_WEEK}")
    rows = [r for b in batches for r in b.results]
    search = [r for r in rows if r.campaign.advertising_channel_type == 2]  # SEARCH
    others = [r for r in rows if r.campaign.advertising_channel_type != 2]
    assert search and all(r.metrics.HasField("search_impression_share") for r in search)
    assert others and not any(r.metrics.HasField("search_impression_share") for r in others)


def without_shopping_impression_share(campaigns: pa.Table) -> pa.Table:
    """Campaign days where Google reports no impression share for non-Search campaigns."""
    name = "metrics.search_impression_share"
    search = pc.equal(campaigns["campaign.advertising_channel_type"], "SEARCH")
    kept = pc.if_else(search, campaigns[name], pa.scalar(None, pa.float64()))
    return campaigns.set_column(campaigns.column_names.index(name), name, kept)


# --- refusals, as Google sends them ---

def test_an_unknown_field_is_a_query_error_like_googles(fake, fixtures):
    published = json.loads((fixtures / "exception_google_ads_failure.json").read_text())
    detail = dict(published["error"]["details"][0])
    assert detail.pop("@type").endswith("errors.GoogleAdsFailure")
    json_format.ParseDict(detail, GoogleAdsFailure.pb()())  # Google's JSON is this version's type
    status, ours = failure(fake, f"SELECT campaign.id, metrics.fake_field FROM campaign WHERE {LAST_WEEK}")
    assert status.name == published["error"]["status"] == "INVALID_ARGUMENT"
    assert ours["errors"][0] == detail["errors"][0]  # the same code and message, word for word


def test_the_token_is_checked(fake):
    status, ours = failure(fake, "SELECT customer.id FROM customer", metadata=[])
    assert status == grpc.StatusCode.UNAUTHENTICATED
    assert ours["errors"][0]["errorCode"] == {"authenticationError": "OAUTH_TOKEN_HEADER_INVALID"}
    status, ours = failure(fake, "SELECT customer.id FROM customer",
                           metadata=[("authorization", "Bearer another")])
    assert ours["errors"][0]["errorCode"] == {"authenticationError": "OAUTH_TOKEN_INVALID"}
    fake.faults.append(Fault("revoked"))
    status, ours = failure(fake, "SELECT customer.id FROM customer")
    assert ours["errors"][0]["errorCode"] == {"authenticationError": "OAUTH_TOKEN_REVOKED"}
    assert all(fake.token not in repr(c) for c in fake.calls)  # the fake keeps no token


def test_the_login_customer_id_is_checked(fake):
    fake.login_customer_id = "9876543210"
    bearer = ("authorization", f"Bearer {fake.token}")
    status, ours = failure(fake, "SELECT customer.id FROM customer", metadata=[bearer])
    assert status == grpc.StatusCode.PERMISSION_DENIED
    assert ours["errors"][0]["errorCode"] == {"authorizationError": "USER_PERMISSION_DENIED"}
    status, ours = failure(fake, "SELECT customer.id FROM customer",
                           metadata=[bearer, ("login-customer-id", "1111111111")])
    assert ours["errors"][0]["errorCode"] == {
        "authorizationError": "INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION"}
    rows = stream(fake, "SELECT customer.id FROM customer",
                  metadata=[bearer, ("login-customer-id", "9876543210")])[0].results
    assert rows[0].customer.id == int(fake.customer_id)


def test_quota_failures_carry_googles_details(fake):
    fake.faults += [Fault("temporary_quota", retry_delay_s=0.25), Fault("daily_quota")]
    status, ours = failure(fake, "SELECT customer.id FROM customer")
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = ours["errors"][0]
    assert error["errorCode"] == {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"}
    assert error["details"]["quotaErrorDetails"]["retryDelay"] == "0.250s"
    status, ours = failure(fake, "SELECT customer.id FROM customer")
    assert ours["errors"][0]["errorCode"] == {"quotaError": "RESOURCE_EXHAUSTED"}


def test_a_stream_can_break_after_some_batches(fake):
    fake.batch_rows = 100
    fake.faults.append(Fault("abort", after_batches=3, resource="keyword_view"))
    received = []
    with pytest.raises(grpc.RpcError) as raised:
        with grpc.insecure_channel(fake.endpoint) as channel:
            call = channel.unary_stream(
                METHOD, request_serializer=SearchGoogleAdsStreamRequest.serialize,
                response_deserializer=SearchGoogleAdsStreamResponse.pb().FromString)
            request = SearchGoogleAdsStreamRequest(
                customer_id=fake.customer_id, query="SELECT segments.date, ad_group.id, "
                f"metrics.clicks FROM keyword_view WHERE {LAST_WEEK}")
            for batch in call(request, metadata=[("authorization", f"Bearer {fake.token}")]):
                received.append(len(batch.results))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert received == [100, 100, 100]
    assert fake.calls[-1].batches_sent == 3


def test_a_date_range_is_required_with_segments_date(fake):
    status, ours = failure(fake, "SELECT segments.date, metrics.clicks FROM campaign")
    assert ours["errors"][0]["errorCode"] == {"queryError": "EXPECTED_FILTERS_ON_DATE_RANGE"}
    status, ours = failure(fake, "SELECT segments.date FROM campaign "
                                 "WHERE segments.date BETWEEN '2026-11-27' AND '2026-11-01'")
    assert ours["errors"][0]["errorCode"] == {"queryError": "INVALID_VALUE_WITH_BETWEEN_OPERATOR"}


def test_an_unknown_resource_is_refused(fake):
    status, ours = failure(fake, "SELECT campaign.id FROM campaigns")
    assert ours["errors"][0]["errorCode"] == {"queryError": "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"}


def test_another_version_is_unimplemented(fake):
    with grpc.insecure_channel(fake.endpoint) as channel:
        call = channel.unary_stream(METHOD.replace("v26", "v25"),
                                    request_serializer=SearchGoogleAdsStreamRequest.serialize)
        with pytest.raises(grpc.RpcError) as raised:
            list(call(SearchGoogleAdsStreamRequest(customer_id=fake.customer_id, query="x")))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
