"""All three live connectors at once, each against its fake (Shopify's GraphQL Admin API, GA4's
Data API over HTTP, Google Ads over gRPC, Google's OAuth endpoints), every one serving the same
demo shop: a tenant connected by the CLI and synced by its Dagster job ends with the same raw
tables, marts, opportunities and alerts as a tenant fed by the generator, and nothing of it
rests on disk in plaintext, after a good run or after a loader killed mid-stream."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import signal
import threading
from datetime import date, datetime, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cleargro_pipeline import bootstrap, ingest, tenants
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.runner import RunFailed, materialize_tenant
from cleargro_pipeline.security import audit, keys, secret_store, verify_at_rest
from cleargro_pipeline.settings import paths
from cleargro_pipeline.sources import google_oauth
from test_shopify_source import _catch, _cli, _content

from fake_ga4 import FakeGa4
from fake_google_ads import FakeGoogleAds
from fake_google_oauth import FakeGoogleOAuth
from fake_shopify import FakeShopify

SHOP = "cleargro-demo.myshopify.com"
SHOP_TOKEN = "shpat_" + "6" * 32
GOOGLE_TOKEN = "ya29.live-connectors"
PROPERTY, CUSTOMER = "123456789", "1234567890"
END = date(2026, 11, 27)
SCHEMAS = ("raw_shop", "raw_ga4", "raw_google_ads", "marts", "insights")


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return DemoShop(size="small", seed=7, end_date=END, incidents=True, tenant="live")


def _history_days(shop: DemoShop) -> int:
    """Days from the demo's first GA4 day to today: a first sync reads all of it."""
    first = min(pc.min(pa.concat_tables(shop.iter_table("raw_ga4", "traffic_daily"))["date"]).as_py(),
                pc.min(pa.concat_tables(shop.iter_table("raw_google_ads", "campaign_daily"))["segments.date"]).as_py())
    return (datetime.now(timezone.utc).date() - first).days + 2


def _connect_google(oauth: FakeGoogleOAuth, tenant: str, source: str, *settings: str) -> None:
    token = oauth.issue_refresh_token(google_oauth.SCOPES[source])
    _cli("connect", "google", "--tenant", tenant, "--source", source, *settings,
         "--refresh-token-stdin", input=token + "\n")


@pytest.fixture(scope="module")
def fakes(shop: DemoShop) -> Iterator[dict]:
    with (FakeShopify(shop, token=SHOP_TOKEN) as shopify,
          FakeGoogleOAuth(access_token=GOOGLE_TOKEN) as oauth,
          FakeGa4(shop, property_id=PROPERTY, token=GOOGLE_TOKEN) as ga4,
          FakeGoogleAds(shop, customer_id=CUSTOMER, token=GOOGLE_TOKEN) as ads):
        yield {"shopify": shopify, "oauth": oauth, "ga4": ga4, "ads": ads}


def _connect_live(tenant: str, fakes: dict, history_days: int) -> None:
    """The tenant's shop, GA4 property and Ads account connected as an operator would, each
    pointed at its fake."""
    _cli("tenants", "configure", tenant, "--endpoint", f"shop={fakes['shopify'].url}",
         "--endpoint", f"google_oauth={fakes['oauth'].url}", "--endpoint", f"ga4={fakes['ga4'].url}",
         "--endpoint", f"google_ads={fakes['ads'].endpoint}")
    _cli("connect", "shopify", "--tenant", tenant, "--shop", SHOP, "--access-token-stdin",
         input=SHOP_TOKEN + "\n")
    # The demo's whole history (730 days by default).
    _connect_google(fakes["oauth"], tenant, "ga4", "--property", PROPERTY,
                    "--history-days", str(history_days))
    _connect_google(fakes["oauth"], tenant, "google_ads", "--customer", CUSTOMER,
                    "--history-days", str(history_days))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shop: DemoShop, fakes: dict) -> Iterator[dict]:
    data = tmp_path_factory.mktemp("live_connectors") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"),
           keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
           "CLEARGRO_PRINCIPAL": "pytest"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        bootstrap.init()
        secret_store.put("platform", google_oauth.PLATFORM_CLIENT, json.dumps(
            {"web": {"client_id": fakes["oauth"].client_id,
                     "client_secret": fakes["oauth"].client_secret}}))
        # A live shop has no price or stock history: the generated tenant goes without too.
        demo = {"kind": "demo", "size": "small", "seed": 7, "history": False}
        tenants.add("generated", {s: dict(demo) for s in tenants.SOURCE_NAMES})
        tenants.add("live", {"app": dict(demo)})
        _connect_live("live", fakes, _history_days(shop))
        materialize_tenant("generated")
        materialize_tenant("live")
        yield {"data": data}
    audit.verify(data / "audit" / "audit.log")


def test_three_live_connectors_build_what_the_generator_builds(live, fakes):
    generated, synced = _content("generated", SCHEMAS), _content("live", SCHEMAS)
    assert set(synced) == set(generated)
    for schema in ("raw_ga4", "raw_google_ads"):
        assert sum(len(rows) for table, rows in synced.items() if table.startswith(schema)) > 1000
    assert synced["insights.opportunities"] and synced["insights.alert_detections"], \
        "the demo plants opportunities and alerts"
    differ = {table: (sorted(set(generated[table]) - set(synced[table]))[:1],
                      sorted(set(synced[table]) - set(generated[table]))[:1])
              for table in sorted(generated) if synced[table] != generated[table]}
    assert not differ, f"differ (a row only generated, a row only synced): {str(differ)[:3000]}"
    # Each Google source went through its API, with the token Google's OAuth handed out.
    assert fakes["ga4"].reports() and any(c.customer_id == CUSTOMER for c in fakes["ads"].calls)


def test_nothing_rests_in_plaintext_after_the_run(live, shop):
    canaries = [pa.concat_tables(shop.iter_table("raw_ga4", "items_daily"))["itemName"][0].as_py(),
                pa.concat_tables(shop.iter_table("raw_google_ads", "search_term_daily"))
                ["search_term_view.search_term"][0].as_py()]
    assert verify_at_rest.scan(verify_at_rest.default_roots(live["data"]), canaries) == []


def test_a_loader_killed_mid_stream_leaves_no_plaintext_and_the_next_sync_completes(
        shop, fakes, data_dir, monkeypatch):
    # dlt writes extracted rows to its working files every 10 items instead of holding them:
    # the plaintext this test looks for is on disk when the loader is killed.
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "10")
    bootstrap.init()
    secret_store.put("platform", google_oauth.PLATFORM_CLIENT, json.dumps(
        {"client_id": fakes["oauth"].client_id, "client_secret": fakes["oauth"].client_secret}))
    tenants.add("acme")
    _connect_live("acme", fakes, _history_days(shop))
    items = pa.concat_tables(shop.iter_table("raw_ga4", "items_daily")).sort_by("date")
    canary = items["itemName"][0].as_py()  # in the first window, read before the stall
    plan = {"ga4": ingest.Ga4Plan(tenant="acme", property=PROPERTY, endpoint=fakes["ga4"].url,
                                  history_days=_history_days(shop))}
    ga4 = fakes["ga4"]
    ga4.stall_after, ga4.release = len(ga4.reports()) + 2, threading.Event()
    ga4.stalled.clear()
    outcome: list[BaseException] = []
    loading = threading.Thread(target=lambda: _catch(outcome, ingest.load, "acme", plan, ("ga4",)))
    loading.start()
    try:
        assert ga4.stalled.wait(120), "the third report request hangs"
        (loader,) = [p for p in multiprocessing.active_children() if p.name == "cleargro-load-acme"]
        held = verify_at_rest.scan([paths().tenant_work("acme")], [canary])
        os.kill(loader.pid, signal.SIGKILL)
        loading.join(60)
    finally:
        ga4.stall_after = None
        ga4.release.set()
    assert isinstance(outcome[0], ingest.IngestError) and "SIGKILL" in str(outcome[0])
    assert held, "the scan can see it: dlt's working files held it while the loader ran"
    assert verify_at_rest.scan(verify_at_rest.default_roots(data_dir), [canary]) == []
    (report,) = ingest.load("acme", plan, ("ga4",))
    assert report.rows["items_daily"] == items.num_rows


def test_a_google_grant_revoked_stops_both_google_sources_until_reconnected(live, fakes):
    fakes["oauth"].revoke_all()  # the merchant removed Cleargro's access in their Google account
    with pytest.raises(RunFailed, match="load_raw"):
        materialize_tenant("live")
    assert set(tenants.rejected_sources(tenants.get("live"))) == {"ga4", "google_ads"}
    assert "shop" in tenants.synced_sources(tenants.get("live"))
    materialize_tenant("live")  # the next run skips both, and the shop still syncs
