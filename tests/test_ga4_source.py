"""The live GA4 source (cleargro_pipeline/sources/ga4) against the local fake GA4 Data API
(tests/fake_ga4.py: a real HTTP server on 127.0.0.1 serving the demo shop's GA4 reports)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.ga4.client import (Ga4Client, IncompatibleReport,
                                                  InvalidReportRequest, QuotaExhausted)
from cleargro_pipeline.sources.ga4.endpoints import (EndpointRefused, PropertyIdInvalid, api_base,
                                                     valid_property_id)
from cleargro_pipeline.sources.ga4.reports import ITEMS, ReportShapeError, page_table
from cleargro_pipeline.sources.ga4.source import Ga4Provider

from fake_ga4 import FakeGa4

TOKEN = "ya29.secret-access-token"
END = date(2026, 11, 27)
# 03:00 UTC on the day after END is still END in New York (the fake property's zone).
NOW = datetime(2026, 11, 28, 3, tzinfo=timezone.utc)
TABLES = ("items_daily", "traffic_daily")


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", end_date=END)


@pytest.fixture(scope="module")
def expected(shop: DemoShop) -> dict[str, pa.Table]:
    return {t: pa.concat_tables(shop.iter_table("raw_ga4", t)) for t in TABLES}


@pytest.fixture(scope="module")
def server(shop: DemoShop) -> Iterator[FakeGa4]:
    with FakeGa4(shop, token=TOKEN) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeGa4) -> Iterator[FakeGa4]:
    """The module's fake, with its scripted state reset for each test."""
    yield server
    server._faults.clear()
    server.daily_tokens, server.tokens_used = None, 0
    server.threshold_days, server.data_loss_days, server.sampled_days = set(), set(), set()
    server.requests.clear()
    server.responses.clear()
    server.time_zone = "America/New_York"


def _client(fake: FakeGa4, token: str = TOKEN) -> Ga4Client:
    return Ga4Client(fake.property_id, lambda: token, endpoint=fake.url, backoff_factor=0.01)


def _provider(fake: FakeGa4, cursors: dict | None = None, **options) -> Ga4Provider:
    return Ga4Provider(_client(fake), lambda table: (cursors or {}).get(table), now=lambda: NOW,
                       **options)


def _read(provider: Ga4Provider, table: str) -> list[pa.Table]:
    return list(provider(contract.table(contract.GA4, table)))


def _sorted(table: pa.Table, name: str) -> pa.Table:
    keys = contract.table(contract.GA4, name).primary_key
    return table.sort_by([(k, "ascending") for k in keys])


def test_a_first_sync_reads_the_demo_shops_tables(fake: FakeGa4, expected: dict):
    provider = _provider(fake)
    for name in TABLES:
        got = pa.concat_tables(_read(provider, name))
        assert got.schema == contract.table(contract.GA4, name).schema
        assert _sorted(got, name).equals(_sorted(expected[name], name))
    # The property's today (New York), not UTC's: the first day of the history is kept.
    assert provider.today == END and provider.time_zone == "America/New_York"
    assert provider.read_as["items_daily"] == f"history {END - timedelta(days=729)}..{END}"
    methods = [method for method, _ in fake.requests]
    assert methods.count("checkCompatibility") == 2  # once per report
    assert all(body["returnPropertyQuota"] is True for body in fake.reports())
    assert provider.notices["quota_tokens_per_day_remaining"].isdigit()


def test_pages_follow_row_count_and_each_chunk_is_one_page(fake: FakeGa4, expected: dict):
    provider = _provider(fake, page_limit=2_000, window_days=30)
    chunks = _read(provider, "items_daily")
    assert _sorted(pa.concat_tables(chunks), "items_daily").equals(
        _sorted(expected["items_daily"], "items_daily"))
    offsets = [b["offset"] for b in fake.reports() if b.get("dimensions")]
    assert max(offsets) > 0 and all(b["limit"] == 2_000 for b in fake.reports() if b.get("offset"))
    # Memory does not grow with the range: a chunk is one page of one window.
    for chunk in chunks:
        first, last = pc.min(chunk["date"]).as_py(), pc.max(chunk["date"]).as_py()
        assert chunk.num_rows <= 2_000 and (last - first).days < 30


def test_a_later_sync_rereads_the_trailing_window(fake: FakeGa4, expected: dict):
    cursor = END - timedelta(days=10)
    provider = _provider(fake, {"traffic_daily": cursor}, trailing_days=3)
    got = pa.concat_tables(_read(provider, "traffic_daily"))
    start = cursor - timedelta(days=3)
    assert fake.reports()[-1]["dateRanges"] == [{"startDate": start.isoformat(),
                                                 "endDate": END.isoformat()}]
    want = expected["traffic_daily"].filter(
        pc.greater_equal(expected["traffic_daily"]["date"], pa.scalar(start)))
    assert _sorted(got, "traffic_daily").equals(_sorted(want, "traffic_daily"))


def test_a_cursor_in_dlts_forms_is_a_day(fake: FakeGa4):
    provider = _provider(fake, {"traffic_daily": f"{END}T00:00:00+00:00"}, trailing_days=0)
    dates = pa.concat_tables(_read(provider, "traffic_daily"))["date"]
    assert pc.min(dates).as_py() == END


def test_a_temporary_quota_and_server_errors_are_retried(fake: FakeGa4, expected: dict):
    provider = _provider(fake)
    _read(provider, "traffic_daily")  # probe and compatibility done: faults hit the report
    fake.fail_next("rate_limited", "hourly_quota", "server_error")
    got = pa.concat_tables(_read(_provider(fake), "traffic_daily"))
    assert _sorted(got, "traffic_daily").equals(_sorted(expected["traffic_daily"], "traffic_daily"))
    assert [s for s in fake.responses if s != 200] == [429, 429, 500]


def test_the_daily_quota_ends_the_sync_and_nothing_is_lost(fake: FakeGa4, expected: dict):
    fake.daily_tokens = 5  # the probe and the first four windows of items
    provider = _provider(fake)
    first = {name: _read(provider, name) for name in TABLES}
    assert provider.quota_exhausted is not None and provider.quota_exhausted.quota == "tokensPerDay"
    assert provider.notices["quota_exhausted"] == "tokensPerDay"
    assert first["traffic_daily"] == []  # no request once the quota is gone
    assert fake.responses.count(429) == 1  # not retried
    loaded = pa.concat_tables(first["items_daily"])
    assert 0 < loaded.num_rows < expected["items_daily"].num_rows
    # The next day: the sync resumes from the last loaded day; merged on the keys, the two
    # syncs hold exactly the shop's rows.
    fake.daily_tokens, fake.tokens_used = None, 0
    cursors = {"items_daily": pc.max(loaded["date"]).as_py()}
    later = pa.concat_tables(_read(_provider(fake, cursors), "items_daily"))
    overlap = pc.is_in(loaded["date"], later["date"].unique())
    merged = pa.concat_tables([loaded.filter(pc.invert(overlap)), later])
    assert _sorted(merged, "items_daily").equals(_sorted(expected["items_daily"], "items_daily"))


def test_the_daily_quota_raises_when_the_caller_wants_it(fake: FakeGa4):
    fake.daily_tokens = 2
    provider = _provider(fake, stop_on_quota=False)
    with pytest.raises(QuotaExhausted, match="daily token quota"):
        _read(provider, "traffic_daily")


def test_a_rejected_token_is_a_credentials_error_without_the_token(fake: FakeGa4):
    provider = Ga4Provider(_client(fake, token="ya29.revoked"), lambda table: None, now=lambda: NOW)
    with pytest.raises(CredentialsRejected, match="HTTP 401 UNAUTHENTICATED") as raised:
        _read(provider, "items_daily")
    assert "ya29" not in str(raised.value)
    assert fake.responses == [401]  # not retried


def test_data_quality_flags_are_recorded_per_report_and_range(fake: FakeGa4):
    flagged = END - timedelta(days=5)
    fake.threshold_days, fake.data_loss_days = {flagged}, {END - timedelta(days=400)}
    provider = _provider(fake)
    _read(provider, "traffic_daily")
    records = provider.quality
    assert len(records) == 9 and all(r["report"] == "traffic" for r in records)
    thresholded = [r for r in records if r["subject_to_thresholding"]]
    lossy = [r for r in records if r["data_loss_from_other_row"]]
    assert [(r["start"] <= flagged <= r["end"]) for r in thresholded] == [True]
    assert len(lossy) == 1 and lossy[0]["start"] <= END - timedelta(days=400) <= lossy[0]["end"]
    assert not any(r["sampled"] for r in records)
    assert provider.notices["flagged_ranges"] == "2"


def test_a_bad_field_is_named(fake: FakeGa4):
    client = _client(fake)
    with pytest.raises(InvalidReportRequest, match="400 INVALID_ARGUMENT for itemIdx") as raised:
        list(client.report_pages(["date", "itemIdx"], ["itemsViewed"], END, END))
    assert raised.value.fields == ("itemIdx",)


def test_an_incompatible_configuration_is_refused_once_checked(fake: FakeGa4):
    client = _client(fake)
    with pytest.raises(IncompatibleReport, match="ecommercePurchases") as raised:
        client.check_compatibility(["date", "itemId"], ["itemsViewed", "ecommercePurchases"])
    assert "ecommercePurchases" in raised.value.fields and "itemsViewed" not in raised.value.fields
    client.check_compatibility(["date", "itemId"], ["itemsViewed"])
    client.check_compatibility(["date", "itemId"], ["itemsViewed"])
    assert [m for m, _ in fake.requests].count("checkCompatibility") == 2


def test_the_endpoint_is_google_or_loopback_only():
    assert api_base(None) == "https://analyticsdata.googleapis.com"
    assert api_base("http://127.0.0.1:8123/") == "http://127.0.0.1:8123"
    for refused in ("http://example.com:8123", "https://analyticsdata.googleapis.com.evil.test",
                    "http://127.0.0.1:8123/v1beta", "ftp://127.0.0.1"):
        with pytest.raises(EndpointRefused, match="only a loopback base URL"):
            Ga4Client("123456789", lambda: TOKEN, endpoint=refused)


def test_the_property_id_is_numeric():
    assert valid_property_id(123456789) == "123456789"
    assert valid_property_id("properties/123456789") == "123456789"
    for bad in ("G-ABC123", "0123", "12a", "", "123/../456"):
        with pytest.raises(PropertyIdInvalid):
            valid_property_id(bad)


def test_today_is_taken_in_the_propertys_zone(fake: FakeGa4):
    fake.time_zone = "Asia/Tokyo"  # already the 28th there
    provider = _provider(fake)
    assert provider.property_today() == END + timedelta(days=1)


def _page(rows: list[tuple[str, ...]]) -> dict:
    """A runReport page of the items report (values as GA writes them: strings)."""
    return {"dimensionHeaders": [{"name": n} for n in ITEMS.dimensions],
            "metricHeaders": [{"name": n} for n in ITEMS.metrics],
            "rows": [{"dimensionValues": [{"value": v} for v in row[:3]],
                      "metricValues": [{"value": v} for v in row[3:]]} for row in rows]}


def test_a_page_becomes_the_contract_table():
    page = _page([
        ("20261120", "SKU-1", "Old name", "10", "2", "1", "9.5"),
        ("20261120", "SKU-1", "New name", "4.0", "1", "0", "0"),  # renamed during the day
        ("20261121", "SKU-2", "Other", "3", "0", "0", "0"),
        ("(other)", "(other)", "(other)", "7", "1", "1", "2.25")])  # GA's data-loss row
    page["metadata"] = {"dataLossFromOtherRow": True, "samplingMetadatas": []}
    table, undated = page_table(ITEMS, page)
    assert table.schema == ITEMS.raw.schema and undated == 1
    # Every row carries the answer's flags: GA sets them per request.
    flags = {"dataLossFromOtherRow": True, "subjectToThresholding": False, "sampled": False}
    assert table.sort_by("date").to_pylist() == [
        {"date": date(2026, 11, 20), "itemId": "SKU-1", "itemName": "Old name", "itemsViewed": 14,
         "itemsAddedToCart": 3, "itemsPurchased": 1, "itemRevenue": 9.5, **flags},
        {"date": date(2026, 11, 21), "itemId": "SKU-2", "itemName": "Other", "itemsViewed": 3,
         "itemsAddedToCart": 0, "itemsPurchased": 0, "itemRevenue": 0.0, **flags}]
    with pytest.raises(ReportShapeError, match="itemsViewed"):  # a fraction is not rounded away
        page_table(ITEMS, _page([("20261120", "SKU-1", "A", "1.5", "0", "0", "0")]))
    assert page_table(ITEMS, {"rowCount": 0})[0].num_rows == 0
