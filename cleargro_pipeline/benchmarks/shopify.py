"""The live Shopify source's full sync, timed against the fake Shopify of the tests.

The fake (`tests/fake_shopify.py`, a real HTTP server on Shopify's schema) runs in a process of
its own, so its memory and its work are not the loader's. Shopify builds a bulk operation's
file on its own servers: a first, untimed sync of another tenant makes the fake build every
file once, and the timed sync is served the same files (the fake keeps them per query), each
operation COMPLETED as soon as its file is there, as Shopify reports it. What is
timed is the loader's whole path: bulk operations started and polled, the JSONL streamed
over HTTP, parsed into Arrow, converted, minimised and loaded by dlt into the tenant's
encrypted warehouse.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cleargro_pipeline import ingest, tenants
from cleargro_pipeline.demo.generator import DemoShop
from cleargro_pipeline.sources.shopify import credentials
from cleargro_pipeline.sources.shopify.documents import BY_TABLE
from cleargro_pipeline.sources.shopify.oauth import ShopToken

TESTS = Path(__file__).resolve().parents[2] / "tests"  # where the fake Shopify lives
TOKEN = "shpat_bench"
SHOP = "cleargro-bench.myshopify.com"
TABLES = tuple(BY_TABLE)  # the raw_shop tables a live shop fills


@dataclass(frozen=True)
class ShopifySync:
    rows: int
    seconds: float
    tables: dict[str, int]
    loader_memory_mb: float  # the loader's peak memory above what it was forked with

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def full_sync(size: str, end_date: date) -> ShopifySync:
    """Sync the demo shop of `size` through the fake, as a tenant's first sync (bulk)."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(size, end_date, ready, stop), daemon=True)
    server.start()
    try:
        url = ready.get(timeout=900)
        _sync("bench_shop_warm", url)  # the fake builds each bulk file once
        started = time.perf_counter()
        report = _sync("bench_shop", url)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        server.join(30)
    return ShopifySync(sum(report.rows.values()), seconds, dict(report.rows), report.memory_growth_mb)


def _sync(tenant: str, url: str) -> ingest.LoadReport:
    tenants.add(tenant, {"shop": {"endpoint": url}})
    credentials.store(tenant, SHOP, ShopToken(TOKEN, frozenset(), None), "access_token")
    plan = ingest.ShopifyPlan(tenant=tenant, shop=SHOP, endpoint=url)
    (report,) = ingest.load(tenant, {"shop": plan}, ("shop",))
    return report


def _serve(size: str, end_date: date, ready: Any, stop: Any) -> None:
    sys.path.insert(0, str(TESTS))
    from fake_shopify import FakeShopify  # a test module: on the path only in this process

    shop = DemoShop(size=size, end_date=end_date)
    with FakeShopify(shop, token=TOKEN, bucket_max=1e9, restore_rate=1e9) as fake:
        fake.cache_bulk = True
        fake.bulk_status_follows_work = True  # a file built already is COMPLETED when polled
        ready.put(fake.url)
        stop.wait()
