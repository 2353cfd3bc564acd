"""The live Google Ads source (cleargro_pipeline/sources/google_ads) against the fake Google Ads
gRPC server (tests/fake_google_ads.py) serving the small demo shop: what a sync reads, how a
broken stream and the quotas are handled, how refusals are named."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import google.oauth2.credentials
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.errors import CredentialsRejected
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.google_ads import client as ads, reports
from cleargro_pipeline.sources.google_ads.client import AccessTokenCredentials, AdsClient
from cleargro_pipeline.sources.google_ads.errors import (GoogleAdsCredentialsRejected,
                                                         GoogleAdsQueryError, GoogleAdsUnavailable,
                                                         QuotaExhausted)
from cleargro_pipeline.sources.days import as_date, windows
from cleargro_pipeline.sources.google_ads.source import GoogleAdsProvider

from fake_google_ads import Fault, FakeGoogleAds

END = date(2026, 11, 27)  # the demo's last day: "today" in the account's time zone
ADS_TABLES = contract.tables_of("google_ads")
CAMPAIGNS = contract.table("raw_google_ads", "campaign_daily")
KEYWORDS = contract.table("raw_google_ads", "keyword_daily")


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", end_date=END)


@pytest.fixture
def fake(shop: DemoShop) -> Iterator[FakeGoogleAds]:
    with FakeGoogleAds(shop) as server:
        yield server


class Sleeps(list):
    """A sleep that records what it was asked to wait, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(fake: FakeGoogleAds, **kwargs: Any) -> AdsClient:
    credentials = kwargs.pop("credentials", None) or google.oauth2.credentials.Credentials(
        token=fake.token)
    kwargs.setdefault("endpoint_address", fake.endpoint)
    return AdsClient(credentials, kwargs.pop("customer", fake.customer_id), **kwargs)


def provider_for(fake: FakeGoogleAds, cursor: Any = None, client: AdsClient | None = None,
                 **kwargs: Any) -> GoogleAdsProvider:
    kwargs.setdefault("today", lambda: END)
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("backoff_s", 0.001)
    return GoogleAdsProvider(client or client_for(fake), cursor or (lambda table: None), **kwargs)


def read(provider: GoogleAdsProvider, raw: contract.RawTable) -> pa.Table:
    chunks = list(provider(raw))
    return pa.concat_tables(chunks) if chunks else raw.schema.empty_table()


def demo_rows(shop: DemoShop, raw: contract.RawTable, start: date, end: date) -> pa.Table:
    """The demo's rows of the days start..end, item ids in lower case as Google returns them."""
    whole = pa.concat_tables(list(shop.iter_table(raw.dataset, raw.name)))
    days = whole["segments.date"]
    whole = whole.filter(pc.and_(pc.greater_equal(days, pa.scalar(start)),
                                 pc.less_equal(days, pa.scalar(end))))
    if "segments.product_item_id" in whole.column_names:
        i = whole.column_names.index("segments.product_item_id")
        whole = whole.set_column(i, "segments.product_item_id",
                                 pc.utf8_lower(whole["segments.product_item_id"]))
    return whole


def assert_same_rows(got: pa.Table, want: pa.Table, raw: contract.RawTable) -> None:
    assert got.schema == raw.schema
    order = [(key, "ascending") for key in raw.primary_key]
    assert got.num_rows == want.num_rows
    assert got.sort_by(order).equals(want.sort_by(order))


# --- what a sync reads ---

@pytest.mark.parametrize("raw", ADS_TABLES, ids=lambda r: r.name)
def test_a_first_sync_reads_what_the_demo_holds(fake, shop, raw):
    provider = provider_for(fake, history_days=45, chunk_days=20)
    got = read(provider, raw)
    start = END - timedelta(days=44)
    assert_same_rows(got, demo_rows(shop, raw, start, END), raw)
    assert got.num_rows > 0
    asked = [(c.start, c.end) for c in fake.calls]
    assert asked == [(start, start + timedelta(days=19)),
                     (start + timedelta(days=20), start + timedelta(days=39)),
                     (start + timedelta(days=40), END)]
    assert all(c.fields == tuple(raw.schema.names) and c.status == "OK" for c in fake.calls)
    assert provider.notices["read_" + raw.name] == f"{start.isoformat()}..{END.isoformat()}"


def test_the_first_sync_backfills_two_years_in_chunks(fake, shop):
    provider = provider_for(fake, chunk_days=100)
    got = read(provider, CAMPAIGNS)
    assert_same_rows(got, demo_rows(shop, CAMPAIGNS, date(2000, 1, 1), END), CAMPAIGNS)
    assert pc.min(got["segments.date"]).as_py() == END - timedelta(days=729)
    assert len(fake.calls) == 8  # 730 days, 100 a stream


def test_fields_google_leaves_unset_are_null(fake, shop):
    name = "metrics.search_impression_share"
    campaigns = demo_rows(shop, CAMPAIGNS, END - timedelta(days=9), END)
    search = pc.equal(campaigns["campaign.advertising_channel_type"], "SEARCH")
    campaigns = campaigns.set_column(campaigns.column_names.index(name), name, pc.if_else(
        search, campaigns[name], pa.scalar(None, pa.float64())))
    fake.serve("campaign_daily", campaigns)
    got = read(provider_for(fake, history_days=10), CAMPAIGNS)
    assert 0 < got[name].null_count < got.num_rows
    assert_same_rows(got, campaigns, CAMPAIGNS)


def test_a_later_sync_rereads_the_trailing_window(fake, shop):
    last_loaded = END - timedelta(days=3)
    provider = provider_for(fake, cursor=lambda table: last_loaded.isoformat(),
                            trailing_days=30, chunk_days=60)
    got = read(provider, KEYWORDS)
    start = last_loaded - timedelta(days=30)
    assert [(c.start, c.end) for c in fake.calls] == [(start, END)]
    assert_same_rows(got, demo_rows(shop, KEYWORDS, start, END), KEYWORDS)


def test_the_trailing_window_stays_inside_the_history(fake):
    provider = provider_for(fake, cursor=lambda table: datetime(2020, 1, 1), history_days=10)
    assert provider.days("keyword_daily") == (END - timedelta(days=9), END)


def test_today_is_the_accounts_day(fake):
    fake.time_zone = "Pacific/Kiritimati"  # UTC+14: already tomorrow for most of the world
    provider = provider_for(fake, today=None)
    today = provider.today()
    assert provider.notices["time_zone"] == "Pacific/Kiritimati"
    assert today >= datetime.now(timezone.utc).date()
    provider.today()
    assert [c.resource for c in fake.calls] == ["customer"]  # asked once


def test_cursor_values_and_chunks():
    assert as_date("2026-05-01") == as_date(datetime(2026, 5, 1, 13)) == date(2026, 5, 1)
    assert as_date(None) is None
    assert list(windows(date(2026, 1, 1), date(2026, 1, 5), 2)) == [
        (date(2026, 1, 1), date(2026, 1, 2)), (date(2026, 1, 3), date(2026, 1, 4)),
        (date(2026, 1, 5), date(2026, 1, 5))]


def test_tables_the_api_does_not_hold_are_not_asked(fake):
    assert list(provider_for(fake)(contract.table("raw_shop", "orders"))) == []
    assert fake.calls == []


# --- broken streams and quotas ---

def test_a_stream_broken_midway_is_retried_whole(fake, shop):
    fake.batch_rows = 500
    fake.faults.append(Fault("abort", after_batches=2))
    provider = provider_for(fake, history_days=30)
    got = read(provider, KEYWORDS)
    assert_same_rows(got, demo_rows(shop, KEYWORDS, END - timedelta(days=29), END), KEYWORDS)
    assert [(c.status, c.batches_sent) for c in fake.calls][0] == ("UNAVAILABLE", 2)
    assert len(fake.calls) == 2 and fake.calls[1].status == "OK"
    assert fake.calls[0].query == fake.calls[1].query  # the same chunk, from the start
    assert provider.retries == 1


def test_a_temporary_quota_waits_as_long_as_google_asks(fake, shop):
    fake.faults.append(Fault("temporary_quota", retry_delay_s=0.05, times=2))
    provider = provider_for(fake, history_days=10)
    got = read(provider, CAMPAIGNS)
    assert_same_rows(got, demo_rows(shop, CAMPAIGNS, END - timedelta(days=9), END), CAMPAIGNS)
    assert provider.sleep == [0.05, 0.05]
    assert [c.status for c in fake.calls] == ["RESOURCE_EXHAUSTED"] * 2 + ["OK"]


def test_transient_failures_back_off_exponentially(fake):
    fake.faults.append(Fault("internal", after_batches=0, times=2))
    provider = provider_for(fake, history_days=10, backoff_s=0.01)
    assert read(provider, CAMPAIGNS).num_rows > 0
    assert provider.sleep == [0.01, 0.02]
    assert [c.status for c in fake.calls] == ["INTERNAL", "INTERNAL", "OK"]


def test_retries_are_bounded(fake):
    fake.faults.append(Fault("abort", times=10))
    provider = provider_for(fake, history_days=10, max_attempts=3)
    with pytest.raises(GoogleAdsUnavailable, match="after 3 attempts"):
        read(provider, CAMPAIGNS)
    assert len(fake.calls) == 3


def test_a_retry_delay_beyond_the_bound_is_not_waited(fake):
    fake.faults.append(Fault("temporary_quota", retry_delay_s=30, times=5))
    provider = provider_for(fake, history_days=10, max_wait_s=10)
    with pytest.raises(GoogleAdsUnavailable, match="RESOURCE_TEMPORARILY_EXHAUSTED"):
        read(provider, CAMPAIGNS)
    assert provider.sleep == [] and len(fake.calls) == 1


def test_the_daily_quota_ends_the_sync_without_retrying(fake):
    fake.faults.append(Fault("daily_quota", after_batches=0, times=5))
    provider = provider_for(fake, history_days=10)
    assert read(provider, CAMPAIGNS).num_rows == 0  # the sync ends, it does not fail
    assert isinstance(provider.quota_exhausted, QuotaExhausted)
    assert "customer 1234567890: the daily" in str(provider.quota_exhausted)
    assert provider.notices["quota_exhausted"] == "operations per day"  # -> source_quota
    assert len(fake.calls) == 1 and provider.sleep == []
    assert read(provider, CAMPAIGNS).num_rows == 0 and len(fake.calls) == 1, \
        "no further query once the day's quota is spent"


# --- refusals ---

def test_a_revoked_token_is_a_credentials_error_naming_the_code(fake):
    fake.faults.append(Fault("revoked"))
    provider = provider_for(fake, history_days=10)
    with pytest.raises(GoogleAdsCredentialsRejected) as refused:
        read(provider, CAMPAIGNS)
    assert isinstance(refused.value, CredentialsRejected)
    assert refused.value.code == "OAUTH_TOKEN_REVOKED"
    assert "authentication_error.OAUTH_TOKEN_REVOKED" in str(refused.value)
    assert fake.token not in str(refused.value)
    assert len(fake.calls) == 1  # not retried


def test_a_wrong_token_is_refused(fake):
    provider = provider_for(fake, client=client_for(
        fake, credentials=google.oauth2.credentials.Credentials(token="not-the-token")))
    with pytest.raises(GoogleAdsCredentialsRejected) as refused:
        read(provider, CAMPAIGNS)
    assert refused.value.code == "OAUTH_TOKEN_INVALID"
    assert "not-the-token" not in str(refused.value)


def test_an_unknown_field_fails_loudly_naming_it(fake):
    client = client_for(fake)
    with pytest.raises(GoogleAdsQueryError) as rejected:
        list(client.search_stream("SELECT campaign.id, metrics.fake_field FROM campaign "
                                  "WHERE segments.date BETWEEN '2026-11-01' AND '2026-11-02'"))
    assert rejected.value.fields == ("metrics.fake_field",)
    assert "query_error.UNRECOGNIZED_FIELD" in str(rejected.value)
    assert len(fake.calls) == 1


def test_a_contract_column_the_version_lacks_fails_before_any_query(fake):
    renamed = contract.RawTable("raw_google_ads", "campaign_daily",
                                pa.schema([("segments.date", pa.date32()),
                                           ("metrics.average_cpv", pa.float64())]),
                                ("segments.date",), "segments.date")
    with pytest.raises(reports.ContractMismatch, match="metrics.average_cpv"):
        provider_for(fake)(renamed)
    assert fake.calls == []


def test_the_login_customer_id_is_sent_and_checked(fake, shop):
    fake.login_customer_id = "9876543210"
    with pytest.raises(GoogleAdsCredentialsRejected) as refused:
        read(provider_for(fake, history_days=5), CAMPAIGNS)
    assert refused.value.code == "USER_PERMISSION_DENIED"
    with pytest.raises(GoogleAdsCredentialsRejected) as refused:
        read(provider_for(fake, history_days=5,
                          client=client_for(fake, login_customer_id="1111111111")), CAMPAIGNS)
    assert refused.value.code == "INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION"
    got = read(provider_for(fake, history_days=5,
                            client=client_for(fake, login_customer_id="9876543210")), CAMPAIGNS)
    assert_same_rows(got, demo_rows(shop, CAMPAIGNS, END - timedelta(days=4), END), CAMPAIGNS)
    assert [c.login_customer_id for c in fake.calls] == [None, "1111111111", "9876543210"]


def test_another_customer_is_refused(fake):
    with pytest.raises(GoogleAdsCredentialsRejected, match="customer 5555555555"):
        read(provider_for(fake, history_days=5, client=client_for(fake, customer="5555555555")),
             CAMPAIGNS)


def test_the_developer_token_is_optional(fake):
    read(provider_for(fake, history_days=2), CAMPAIGNS)
    read(provider_for(fake, history_days=2, client=client_for(fake, developer_token="dt")),
         CAMPAIGNS)
    assert [c.developer_token_sent for c in fake.calls] == [False, True]


def test_an_access_token_callable_is_asked_before_each_query(fake):
    asked = []

    def token() -> str:
        asked.append(1)
        return fake.token
    client = client_for(fake, credentials=AccessTokenCredentials(token))
    read(provider_for(fake, history_days=4, chunk_days=2, client=client), CAMPAIGNS)
    assert len(fake.calls) == 2 and len(asked) >= 2


def test_a_refused_refresh_token_stops_before_the_query(fake):
    def token() -> str:
        raise CredentialsRejected("tenant 't': google_ads: Google refused the refresh token")
    client = client_for(fake, credentials=AccessTokenCredentials(token))
    with pytest.raises(CredentialsRejected):
        read(provider_for(fake, history_days=4, client=client), CAMPAIGNS)
    assert fake.calls == []


# --- ids and endpoints ---

def test_customer_ids_are_ten_digits_without_dashes():
    credentials = google.oauth2.credentials.Credentials(token="t")
    with pytest.raises(ads.InvalidCustomerId, match="has dashes: give the ten digits alone "
                                                    r"\(1234567890\)"):
        AdsClient(credentials, "123-456-7890")
    with pytest.raises(ads.InvalidCustomerId, match="login customer id '987-654-3210' has dashes"):
        AdsClient(credentials, "1234567890", login_customer_id="987-654-3210")
    for bad in ("12345", "12345678901", "abcdefghij", "", None):
        with pytest.raises(ads.InvalidCustomerId, match="ten digits"):
            ads.customer_id(bad)
    assert ads.customer_id(" 1234567890 ") == "1234567890"


def test_construction_makes_no_network_call():
    # a refresh token whose token endpoint does not exist: building must not try it
    credentials = google.oauth2.credentials.Credentials(
        token=None, refresh_token="r", client_id="c", client_secret="s",
        token_uri="http://127.0.0.1:9/token")
    client = AdsClient(credentials, "1234567890", endpoint_address="127.0.0.1:9")
    assert client.library.version == "v26" and client._service is None


def test_an_https_endpoint_talks_tls_even_on_loopback(fake):
    client = client_for(fake, endpoint_address=f"https://{fake.endpoint}")
    with pytest.raises(GoogleAdsUnavailable, match="ServiceUnavailable"):
        read(provider_for(fake, history_days=2, max_attempts=1, client=client), CAMPAIGNS)
    assert fake.calls == []  # the TLS handshake failed against the plaintext fake: nothing sent


@pytest.mark.parametrize("value, address, plaintext", [
    (None, "googleads.googleapis.com", False),
    ("127.0.0.1:8443", "127.0.0.1:8443", True),
    ("http://127.0.0.1:8443", "127.0.0.1:8443", True),
    ("localhost:8443", "localhost:8443", True),
    ("[::1]:8443", "[::1]:8443", True),
    ("https://127.0.0.1:8443", "127.0.0.1:8443", False),
    ("googleads.googleapis.com:443", "googleads.googleapis.com:443", False),
])
def test_endpoints(value, address, plaintext):
    assert ads.endpoint(value) == ads.Endpoint(address, plaintext)


@pytest.mark.parametrize("value, message", [
    ("http://10.0.0.5:8443", "plaintext gRPC is allowed to a loopback address only"),
    ("http://googleads.googleapis.com:443", "plaintext gRPC is allowed to a loopback"),
    ("ads.example.com:443", "only Google's API hosts"),
    ("ftp://127.0.0.1:1", "give HOST:PORT"),
    ("127.0.0.1:1/path", "give HOST:PORT"),
])
def test_other_endpoints_are_refused(value, message):
    with pytest.raises(ads.EndpointRefused, match=message):
        AdsClient(google.oauth2.credentials.Credentials(token="t"), "1234567890",
                  endpoint_address=value)
