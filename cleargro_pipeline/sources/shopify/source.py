"""The Shopify shop as a chunk provider of the raw contract (`sources.raw.contract_source`).

Each document (documents.py) fills one or more contract tables; the table's dlt resource pulls
its chunks, and a shared stream per document hands the other tables' chunks to their queues,
so a document runs once per load however many tables it fills. Which way a document is read:
- the first sync, or a cursor older than `bulk_after` (7 days): one bulk operation (bulk.py);
- otherwise pages of `updated_at >= cursor - OVERLAP`, nested connections followed to the end.
The cursor is the table's own incremental cursor in dlt's state, which lives in the tenant's
warehouse; the overlap re-reads a few minutes, and the merge on primary keys (and dlt's
incremental) keep a re-read row from loading twice.
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.sources.shopify import bulk, columns
from cleargro_pipeline.sources.shopify.client import QueryTooCostly, ShopifyClient, ShopifyError
from cleargro_pipeline.sources.shopify.documents import BY_TABLE, Document, Nested

OVERLAP = timedelta(minutes=10)
BULK_AFTER = timedelta(days=7)  # a longer window is read as a bulk operation
# Shopify prices a query before running it (about 1 point per object, each connection at its
# `first`) and refuses one above 1000 points. A page holds 10 orders with their first 5 line
# items and refunds (and 50 refunds a query after a bulk read); a longer list is read on by
# itself, 100 at a time. A page that still costs too much is halved until it fits.
PAGE_SIZE, NESTED_PAGE_SIZE, REST_PAGE_SIZE, OWNERS_PER_QUERY = 10, 5, 100, 50
FLAT_PAGE_SIZE = 250  # nodes a page of a document without nested connections (Shopify's max)
LINES_PER_BLOCK = 5_000  # paged nodes converted at once

Cursor = Callable[[str], Any]  # table -> its incremental cursor's last value (None: never loaded)


class ShopifyProvider:
    """`provide(raw)` for contract_source: the chunks of one `raw_shop` table."""

    def __init__(self, client: ShopifyClient, cursor: Cursor, *, page_size: int = PAGE_SIZE,
                 flat_page_size: int = FLAT_PAGE_SIZE, nested_page_size: int = NESTED_PAGE_SIZE,
                 bulk_time_limit_s: float = bulk.TIME_LIMIT_S, bulk_after: timedelta = BULK_AFTER,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.client, self.cursor, self.now, self.bulk_after = client, cursor, now, bulk_after
        self.page_size, self.flat_page_size = page_size, flat_page_size
        self.nested_page_size, self.rest_page_size = nested_page_size, REST_PAGE_SIZE
        self.bulk_time_limit_s = bulk_time_limit_s
        self._queues: dict[str, deque[pa.Table]] = {}
        self._streams: dict[str, Iterator[tuple[str, pa.Table]]] = {}
        self.read_as: dict[str, str] = {}  # document -> "bulk" or "pages"
        # The first day of orders a first sync could read: Shopify returns only the last 60
        # days of orders to an app without the read_all_orders scope.
        self.orders_from: date | None = None

    @property
    def notices(self) -> dict[str, str]:
        """What the load report records about this sync (no data values)."""
        served = self.client.served_version
        return {**{f"read_{doc}": how for doc, how in sorted(self.read_as.items())},
                **({"api_version_served": served} if served else {}),
                **({"orders_history_from": self.orders_from.isoformat()} if self.orders_from else {}),
                "api_version": self.client.api_version}

    def __call__(self, raw: RawTable) -> Iterable[pa.Table]:
        if raw.name not in BY_TABLE:
            return ()  # a table the shop does not keep (history arrives by file drop)
        return self._chunks(raw.name)

    def _chunks(self, table: str) -> Iterator[pa.Table]:
        doc = BY_TABLE[table]
        queue = self._queues.setdefault(table, deque())
        stream = self._streams.get(doc.name)
        if stream is None:
            stream = self._streams[doc.name] = self._read(doc)
        while True:
            if queue:
                yield queue.popleft()
                continue
            try:
                other, chunk = next(stream)
            except StopIteration:
                return
            self._queues.setdefault(other, deque()).append(chunk)

    def _read(self, doc: Document) -> Iterator[tuple[str, pa.Table]]:
        since = _as_datetime(self.cursor(doc.cursor_table))
        converter = columns.Converter(doc)
        if since is None or self.now() - since > self.bulk_after:
            self.read_as[doc.name] = "bulk"
            query = _updated_since(since) if since else None
            for block in bulk.run(self.client, doc.bulk(query), name=doc.name,
                                  schema=columns.LINES[doc.name],
                                  time_limit_s=self.bulk_time_limit_s):
                for table, chunk in converter.convert(block):
                    if table == "orders" and since is None:
                        self._first_order(chunk)
                    yield table, chunk
            yield from self._owned(doc, converter)
        else:
            self.read_as[doc.name] = "pages"
            yield from self._paged(doc, converter, _updated_since(since))
        left = converter.finish()
        if left:
            raise bulk.BulkOperationFailed(
                f"{doc.name}: {left} lines name a parent the result does not hold (cut short?); "
                "nothing of it was loaded")

    def _first_order(self, orders: pa.Table) -> None:
        first = pc.min(orders["created_at"]).as_py()
        if first is not None and (self.orders_from is None or first.date() < self.orders_from):
            self.orders_from = first.date()

    def _paged(self, doc: Document, converter: columns.Converter,
               query: str) -> Iterator[tuple[str, pa.Table]]:
        lines: list[dict] = []
        for node in self._pages(doc, query):
            lines += columns.flatten(doc, node)
            if len(lines) >= LINES_PER_BLOCK:
                yield from converter.convert(columns.lines_table(doc, lines))
                lines = []
        if lines:
            yield from converter.convert(columns.lines_table(doc, lines))

    def _pages(self, doc: Document, query: str) -> Iterator[dict]:
        variables: dict[str, Any] = {
            "first": self.page_size if doc.nested else self.flat_page_size, "after": None}
        if doc.nested:
            variables["nested"] = self.nested_page_size
        if doc.filtered:
            variables["query"] = query
        document = doc.paged()
        while True:
            connection = self._affordable(document, variables, doc.name)[doc.root]
            for edge in connection.get("edges") or []:
                node = edge.get("node") or {}
                for nested in doc.nested:
                    self._complete(doc, nested, node)
                yield node
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            if not page.get("endCursor"):
                raise ShopifyError(f"shop {self.client.shop}: {doc.name} has a next page "
                                   "but no cursor")
            variables["after"] = page["endCursor"]

    def _owned(self, doc: Document, converter: columns.Converter) -> Iterator[tuple[str, pa.Table]]:
        """After a bulk read: the connections inside list elements (an order's refunds' line
        items), which a bulk query cannot hold, read for many owners a query."""
        for nested in (n for n in doc.nested if n.inside):
            ids = list(converter.parents.refunds)
            for start in range(0, len(ids), OWNERS_PER_QUERY):
                found = self._affordable(nested.owners(), {
                    "ids": ids[start:start + OWNERS_PER_QUERY], "first": self.nested_page_size},
                    f"{doc.name} {nested.field}")
                lines = []
                for owner in found.get("nodes") or []:
                    if not owner:
                        continue  # deleted since the bulk read: its rows go with it
                    self._complete(doc, nested, owner, owned=True)
                    lines += [{**(edge.get("node") or {}), columns.PARENT: owner["id"]}
                              for edge in (owner.get(nested.field) or {}).get("edges") or []]
                if lines:
                    yield from converter.convert(columns.lines_table(doc, lines))

    def _affordable(self, document: str, variables: dict[str, Any], name: str) -> dict:
        """Run a page, halving its size (the nested pages first) while Shopify finds it too
        costly; the smaller size stays for the document's next pages."""
        while True:
            try:
                return self.client.query(document, variables, name=name)
            except QueryTooCostly:
                key = "nested" if variables.get("nested", 1) > 1 else "first"
                if variables[key] <= 1:
                    raise
                variables[key] //= 2

    def _complete(self, doc: Document, nested: Nested, node: dict, owned: bool = False) -> None:
        """Read the rest of a nested connection that did not fit in the first page."""
        owners = (node.get(nested.inside) or []) if nested.inside and not owned else [node]
        for owner in owners:
            connection = owner.get(nested.field) or {}
            edges = connection.setdefault("edges", [])
            page = connection.get("pageInfo") or {}
            while page.get("hasNextPage"):
                more = self._affordable(doc.rest_of(nested), {
                    "id": owner["id"], "first": self.rest_page_size,
                    "after": page.get("endCursor")}, f"{doc.name} {nested.field}")
                rest = (more.get(nested.root) or {}).get(nested.field) or {}
                edges += rest.get("edges") or []
                page = rest.get("pageInfo") or {}


def _updated_since(since: datetime) -> str:
    bound = (since - OVERLAP).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>='{bound}'"


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        return _as_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if hasattr(value, "to_pydatetime"):  # a pendulum / pandas timestamp
        return _as_datetime(value.to_pydatetime())
    raise ShopifyError(f"cursor value of type {type(value).__name__} is not a time")

