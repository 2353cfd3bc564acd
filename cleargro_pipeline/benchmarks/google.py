"""The live GA4 and Google Ads sources' full syncs, timed against the fakes of the tests.

The fakes (`tests/fake_ga4.py` over HTTP, `tests/fake_google_ads.py` over gRPC, and
`tests/fake_google_oauth.py` handing out the access token) run in a process of their own, so
their work and memory are not the loader's. What is timed is the loader's whole path for one
source, as a tenant's first sync: the access token refreshed through OAuth, every report read
over the whole history (GA4 in 90-day windows, pages of 100,000 rows; Ads in 30-day streams),
converted to Arrow, minimised and loaded by dlt into the tenant's encrypted warehouse. Google
builds its answers on its own servers: an untimed sync of another tenant first makes the fakes
build each answer once, and the timed sync is served the same answers.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.security import secret_store
from cleargro_pipeline.sources import contract, google_oauth

TESTS = Path(__file__).resolve().parents[2] / "tests"  # where the fakes live
TOKEN = "ya29.bench"
PROPERTY, CUSTOMER = "123456789", "1234567890"
SOURCES = ("ga4", "google_ads")


@dataclass(frozen=True)
class SourceSync:
    source: str
    rows: int
    seconds: float
    loader_memory_mb: float  # the loader's peak memory above what it was forked with

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def full_syncs(size: str, end_date: date) -> dict[str, SourceSync]:
    """Each Google source of the demo shop of `size`, synced whole as a tenant's first sync."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(size, end_date, ready, stop), daemon=True)
    server.start()
    try:
        fakes = ready.get(timeout=900)
        _configure_client(*fakes["client"])
        for source in SOURCES:  # the fakes build each answer once (Google's servers' work)
            _timed(source, fakes, tenant=f"bench_{source}_warm")
        return {source: _timed(source, fakes, tenant=f"bench_{source}") for source in SOURCES}
    finally:
        stop.set()
        server.join(30)


def history_days(shop: DemoShop) -> int:
    """Days from the demo's first GA4 or Ads day to today: a first sync reads all of it."""
    first = min(pc.min(pa.concat_tables(shop.iter_table(dataset, table))[cursor]).as_py()
                for dataset, table, cursor in ((contract.GA4, "traffic_daily", "date"),
                                               (contract.GOOGLE_ADS, "campaign_daily", "segments.date")))
    return (datetime.now(timezone.utc).date() - first).days + 2


def _timed(source: str, fakes: dict[str, Any], *, tenant: str) -> SourceSync:
    tenants.add(tenant)
    settings = {"ga4": {"property": PROPERTY, "endpoint": fakes["ga4"]},
                "google_ads": {"customer": CUSTOMER, "endpoint": fakes["ads"]}}[source]
    tenants.configure_source(tenant, source, {google_oauth.ENDPOINT_SETTING: fakes["oauth"]})
    grant = google_oauth.Grant(fakes["refresh_tokens"][source],
                               frozenset({google_oauth.SCOPES[source]}))
    google_oauth.store(tenant, source, grant, settings)
    plan = (ingest.Ga4Plan(tenant, PROPERTY, endpoint=fakes["ga4"], history_days=fakes["days"])
            if source == "ga4" else
            ingest.GoogleAdsPlan(tenant, CUSTOMER, endpoint=fakes["ads"], history_days=fakes["days"]))
    started = time.perf_counter()
    (report,) = ingest.load(tenant, {source: plan}, (source,))
    seconds = time.perf_counter() - started
    return SourceSync(source, sum(report.rows.values()), seconds, report.memory_growth_mb)


def _configure_client(client_id: str, client_secret: str) -> None:
    """The platform's Google OAuth client: the fake's."""
    secret_store.put(secret_store.PLATFORM, google_oauth.PLATFORM_CLIENT,
                     json.dumps({"client_id": client_id, "client_secret": client_secret}))


def _serve(size: str, end_date: date, ready: Any, stop: Any) -> None:
    sys.path.insert(0, str(TESTS))
    # Test modules: on the path only in this process.
    from fake_ga4 import FakeGa4
    from fake_google_ads import FakeGoogleAds
    from fake_google_oauth import FakeGoogleOAuth

    shop = DemoShop(size=size, end_date=end_date)
    with (FakeGoogleOAuth(access_token=TOKEN) as oauth,
          FakeGa4(shop, property_id=PROPERTY, token=TOKEN) as ga4,
          FakeGoogleAds(shop, customer_id=CUSTOMER, token=TOKEN, cache_batches=True) as ads):
        ga4.cache_answers = True
        ready.put({"oauth": oauth.url, "ga4": ga4.url, "ads": ads.endpoint,
                   "client": (oauth.client_id, oauth.client_secret), "days": history_days(shop),
                   "refresh_tokens": {s: oauth.issue_refresh_token(google_oauth.SCOPES[s])
                                      for s in SOURCES}})
        stop.wait()
