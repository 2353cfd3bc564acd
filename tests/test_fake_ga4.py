"""The fake GA4 Data API against Google's own published runReport body
(`../shared/fixtures/ga4/report.json`): the same keys, nesting and JSON types."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import requests

from cleargro_pipeline.demo.generator import DemoShop

from conftest import FIXTURES
from fake_ga4 import FakeGa4

TOKEN = "ya29.test-token"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGa4]:
    with FakeGa4(DemoShop(size="small"), token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def fixture_body() -> dict:
    path = FIXTURES / "ga4" / "report.json"
    assert path.exists(), f"{path} is missing: the shared fixtures must sit beside the checkout"
    return json.loads(path.read_text())


def _post(fake: FakeGa4, body: dict, method: str = "runReport", token: str = TOKEN) -> Any:
    return requests.post(f"{fake.url}/v1beta/properties/{fake.property_id}:{method}",
                         json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _shape(value: Any) -> Any:
    """A JSON value's structure: dict keys and list element shapes, scalars by type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_a_report_has_the_fixtures_shape(fake: FakeGa4, fixture_body: dict):
    # The fixture's request: one day dimension, one metric, the three aggregations, a limit.
    answer = _post(fake, {"dateRanges": [{"startDate": "30daysAgo", "endDate": "today"}],
                          "dimensions": [{"name": "date"}], "metrics": [{"name": "sessions"}],
                          "metricAggregations": ["TOTAL", "MAXIMUM", "MINIMUM"], "limit": 1})
    assert answer.status_code == 200
    body = answer.json()
    expected = _shape(fixture_body)
    # The fixture names its own metric type; ours is an integer metric of the same shape.
    assert _shape(body) == expected
    assert body["rowCount"] == 31 and len(body["rows"]) == 1
    assert body["totals"][0]["dimensionValues"] == [{"value": "RESERVED_TOTAL"}]
    assert body["metricHeaders"] == [{"name": "sessions", "type": "TYPE_INTEGER"}]
    value = body["rows"][0]["dimensionValues"][0]["value"]
    assert len(value) == 8 and value.isdigit()  # YYYYMMDD, a string like every value


def test_quota_and_flags_are_the_documented_fields(fake: FakeGa4):
    day = fake.today
    fake.threshold_days, fake.data_loss_days, fake.sampled_days = {day}, {day}, {day}
    try:
        body = _post(fake, {"dateRanges": [{"startDate": "today", "endDate": "today"}],
                            "dimensions": [{"name": "date"}, {"name": "sessionSourceMedium"}],
                            "metrics": [{"name": "sessions"}, {"name": "purchaseRevenue"}],
                            "returnPropertyQuota": True}).json()
    finally:
        fake.threshold_days, fake.data_loss_days, fake.sampled_days = set(), set(), set()
    assert set(body["propertyQuota"]) == {
        "tokensPerDay", "tokensPerHour", "concurrentRequests", "serverErrorsPerProjectPerHour",
        "potentiallyThresholdedRequestsPerHour", "tokensPerProjectPerHour"}
    assert body["metadata"]["dataLossFromOtherRow"] is True
    assert body["metadata"]["subjectToThresholding"] is True
    sampling = body["metadata"]["samplingMetadatas"][0]
    assert set(sampling) == {"samplesReadCount", "samplingSpaceSize"}
    assert body["metricHeaders"][1]["type"] == "TYPE_CURRENCY"
    # Unflagged answers leave the flags out, as proto3 JSON leaves out false.
    plain = _post(fake, {"dateRanges": [{"startDate": "today", "endDate": "today"}],
                         "metrics": [{"name": "sessions"}]}).json()
    assert set(plain["metadata"]) == {"currencyCode", "timeZone"}


def test_an_empty_answer_leaves_rows_and_row_count_out(fake: FakeGa4):
    body = _post(fake, {"dateRanges": [{"startDate": "2020-01-01", "endDate": "2020-01-31"}],
                        "dimensions": [{"name": "date"}], "metrics": [{"name": "sessions"}]}).json()
    assert "rows" not in body and "rowCount" not in body
    assert body["kind"] == "analyticsData#runReport"


def test_errors_have_googles_shape(fake: FakeGa4):
    unauthenticated = _post(fake, {}, token="wrong")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["status"] == "UNAUTHENTICATED"
    unknown = _post(fake, {"dateRanges": [{"startDate": "today", "endDate": "today"}],
                           "dimensions": [{"name": "itemIdx"}], "metrics": [{"name": "sessions"}]})
    assert unknown.status_code == 400
    assert set(unknown.json()["error"]) == {"code", "message", "status"}
    assert "itemIdx" in unknown.json()["error"]["message"]
    incompatible = _post(fake, {"dimensions": [{"name": "itemId"}],
                                "metrics": [{"name": "ecommercePurchases"}]}, "checkCompatibility")
    assert incompatible.status_code == 200
    verdicts = {m["metricMetadata"]["apiName"]: m["compatibility"]
                for m in incompatible.json()["metricCompatibilities"]}
    assert verdicts["ecommercePurchases"] == "INCOMPATIBLE"
    assert verdicts["itemsViewed"] == "COMPATIBLE"
