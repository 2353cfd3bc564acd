"""The Shopify shop as a chunk provider of the raw contract (`sources.raw.contract_source`).

Each document (documents.py) fills one or more contract tables; the table's dlt resource pulls
its chunks, and a shared stream per document hands the other tables' chunks to their queues,
so a document runs once per load however many tables it fills. Which way a document is read:
- the first sync, or a cursor older than `bulk_after` (7 days): one bulk operation (bulk.py),
  all of them started together on the first read (Shopify builds up to 5 at once); the
  connections a bulk query cannot hold (refunds' line items) are read on a thread of their
  own while the file streams;
- otherwise pages of `updated_at >= cursor - OVERLAP`, nested connections followed to the end.
The cursor is the table's own incremental cursor in dlt's state, which lives in the tenant's
warehouse; the overlap re-reads a few minutes, and the merge on primary keys (and dlt's
incremental) keep a re-read row from loading twice.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.sources.contract import RawTable
from cleargro_pipeline.sources.shopify import bulk, columns
from cleargro_pipeline.sources.shopify.client import QueryTooCostly, ShopifyClient, ShopifyError
from cleargro_pipeline.sources.shopify.documents import BY_TABLE, DOCUMENTS, Document, Nested

OVERLAP = timedelta(minutes=10)
BULK_AFTER = timedelta(days=7)  # a longer window is read as a bulk operation
# Shopify prices a query before running it (about 1 point per object, each connection at its
# `first`) and refuses one above 1000 points. A page holds 10 orders with their first 5 line
# items and refunds (and 50 refunds a query alongside a bulk read); a longer list is read on by
# itself, 100 at a time. A page that still costs too much is halved until it fits.
PAGE_SIZE, NESTED_PAGE_SIZE, REST_PAGE_SIZE, OWNERS_PER_QUERY = 10, 5, 100, 50
FLAT_PAGE_SIZE = 250  # nodes a page of a document without nested connections (Shopify's max)
LINES_PER_BLOCK = 5_000  # paged nodes converted at once
# Rows of a table handed to dlt at once: each piece costs dlt, the minimiser and DuckDB a
# fixed amount of work (the pseudonymiser's look-up of every shopper seen so far), so few
# large pieces are cheaper than many small ones; the size bounds the loader's memory.
CHUNK_ROWS = 100_000
RUNNING_BULK_MAX = 5  # bulk queries Shopify runs at once for one shop (since API 2026-01)

Cursor = Callable[[str], Any]  # table -> its incremental cursor's last value (None: never loaded)


class ShopifyProvider:
    """`provide(raw)` for contract_source: the chunks of one `raw_shop` table."""

    def __init__(self, client: ShopifyClient, cursor: Cursor, *, page_size: int = PAGE_SIZE,
                 flat_page_size: int = FLAT_PAGE_SIZE, nested_page_size: int = NESTED_PAGE_SIZE,
                 bulk_time_limit_s: float = bulk.TIME_LIMIT_S, bulk_after: timedelta = BULK_AFTER,
                 chunk_rows: int = CHUNK_ROWS, shopper_level: bool = True,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.client, self.cursor, self.now, self.bulk_after = client, cursor, now, bulk_after
        # Without shopper-level scope no document selects the shopper (nor needs read_customers).
        self.documents = {doc.name: doc if shopper_level else doc.without_shopper()
                          for doc in DOCUMENTS}
        self.page_size, self.flat_page_size = page_size, flat_page_size
        self.nested_page_size, self.rest_page_size = nested_page_size, REST_PAGE_SIZE
        self.bulk_time_limit_s, self.chunk_rows = bulk_time_limit_s, chunk_rows
        self._queues: dict[str, deque[pa.Table]] = {}
        self._streams: dict[str, Iterator[tuple[str, pa.Table]]] = {}
        self._wanted: list[str] = []  # documents whose tables the source asked for
        self._since: dict[str, datetime | None] | None = None  # document -> cursor, once planned
        self._to_start: list[Document] = []  # bulk reads waiting for a free slot
        self._started: dict[str, str] = {}  # document -> its running bulk operation
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
        if BY_TABLE[raw.name].name not in self._wanted:
            self._wanted.append(BY_TABLE[raw.name].name)
        return self._chunks(raw.name)

    def _chunks(self, table: str) -> Iterator[pa.Table]:
        doc = self.documents[BY_TABLE[table].name]
        queue = self._queues.setdefault(table, deque())
        stream = self._streams.get(doc.name)
        if stream is None:
            self._plan()
            stream = self._streams[doc.name] = _coalesced(self._read(doc), self.chunk_rows)
        while True:
            if queue:
                yield queue.popleft()
                continue
            try:
                other, chunk = next(stream)
            except StopIteration:
                return
            self._queues.setdefault(other, deque()).append(chunk)

    def _plan(self) -> None:
        """On the first read: how each wanted document is read, and every bulk read started
        at once (up to Shopify's limit), so Shopify builds the files side by side while
        the first ones are loaded."""
        if self._since is not None:
            return
        self._since = {}
        for doc in (d for d in self.documents.values() if d.name in self._wanted):
            since = self._since[doc.name] = _as_datetime(self.cursor(doc.cursor_table))
            if self._by_bulk(since):
                self._to_start.append(doc)
        self._start_ahead()

    def _by_bulk(self, since: datetime | None) -> bool:
        return since is None or self.now() - since > self.bulk_after

    def _start_ahead(self) -> None:
        """Start waiting bulk reads, one slot kept free for a document read out of turn
        (only the document being read is waited for: the others' slots free as they end)."""
        while self._to_start and len(self._started) < RUNNING_BULK_MAX - 1:
            self._start(self._to_start[0])

    def _start(self, doc: Document) -> str:
        if doc in self._to_start:
            self._to_start.remove(doc)
        since = (self._since or {}).get(doc.name)
        operation = self._started[doc.name] = bulk.start(
            self.client, doc.bulk(_updated_since(since) if since else None), name=doc.name)
        return operation

    def _finished(self, doc: Document) -> None:
        """`doc`'s operation ended on Shopify's side: its slot takes the next one."""
        self._started.pop(doc.name, None)
        self._start_ahead()

    def _read(self, doc: Document) -> Iterator[tuple[str, pa.Table]]:
        since = (self._since or {}).get(doc.name)
        converter = columns.Converter(doc)
        if self._by_bulk(since):
            self.read_as[doc.name] = "bulk"
            operation = self._started.get(doc.name) or self._start(doc)
            with _OwnerReads(self, doc) as owners:
                for block in bulk.read(self.client, operation, name=doc.name,
                                       schema=columns.LINES[doc.name],
                                       time_limit_s=self.bulk_time_limit_s,
                                       on_finished=lambda: self._finished(doc)):
                    for table, chunk in converter.convert(block):
                        if table == "orders" and since is None:
                            self._first_order(chunk)
                        yield table, chunk
                    # Owners read as the file names them: their rows never pile up.
                    yield from self._owned(doc, converter, owners, whole_batches=True)
                yield from self._owned(doc, converter, owners)
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

    def _owned(self, doc: Document, converter: columns.Converter, owners: _OwnerReads, *,
               whole_batches: bool = False) -> Iterator[tuple[str, pa.Table]]:
        """During and after a bulk read: the connections inside list elements (an order's
        refunds' line items), which a bulk query cannot hold, read for many owners a query
        by `owners` in the background as the bulk's lines name them; `whole_batches`: only
        as many owners as fill whole queries, and only the reads done by now."""
        for nested in (n for n in doc.nested if n.inside):
            unread = converter.parents.unread_refunds
            while len(unread) >= OWNERS_PER_QUERY or (unread and not whole_batches):
                owners.submit(nested, unread[:OWNERS_PER_QUERY])
                del unread[:OWNERS_PER_QUERY]
        for ids, lines in owners.results(wait=not whole_batches):
            if lines:
                yield from converter.convert(columns.lines_table(doc, lines))
            converter.parents.forget_refunds(ids)

    def _owner_lines(self, doc: Document, nested: Nested, ids: list[str]) -> list[dict]:
        """The lines of one query's owners, `nested` followed to the end for each."""
        found = self._affordable(nested.owners(), {
            "ids": ids, "first": self.nested_page_size}, f"{doc.name} {nested.field}")
        lines = []
        for owner in found.get("nodes") or []:
            if not owner:
                continue  # deleted since the bulk read: its rows go with it
            self._complete(doc, nested, owner, owned=True)
            lines += [{**(edge.get("node") or {}), columns.PARENT: owner["id"]}
                      for edge in (owner.get(nested.field) or {}).get("edges") or []]
        return lines

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


class _OwnerReads:
    """One document's owner queries, run one at a time on a thread of their own (by a
    sibling provider on its own client) while the bulk file is parsed; their results come
    back in submission order, as (owner ids, lines)."""

    def __init__(self, provider: ShopifyProvider, doc: Document):
        self._parent, self._doc = provider, doc
        self._provider: ShopifyProvider | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    def _sibling(self) -> ShopifyProvider:
        if self._provider is None:
            parent = self._parent
            self._provider = ShopifyProvider(parent.client.sibling(), parent.cursor,
                                             nested_page_size=parent.nested_page_size)
            self._provider.rest_page_size = parent.rest_page_size
        return self._provider

    def submit(self, nested: Nested, ids: list[str]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopify-owners")
        self._pending.append(self._pool.submit(self._read, nested, ids))

    def _read(self, nested: Nested, ids: list[str]) -> tuple[list[str], list[dict]]:
        return ids, self._sibling()._owner_lines(self._doc, nested, ids)

    def results(self, wait: bool) -> Iterator[tuple[list[str], list[dict]]]:
        while self._pending and (wait or self._pending[0].done()):
            yield self._pending.popleft().result()

    def __enter__(self) -> _OwnerReads:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _coalesced(stream: Iterator[tuple[str, pa.Table]],
               rows: int) -> Iterator[tuple[str, pa.Table]]:
    """`stream`'s chunks joined per table into larger pieces. All tables are handed on
    together once one has `rows` rows: each table's resource then finds a piece in its
    queue, where a table waiting alone for `rows` rows (a rare one) would make its resource
    drive the whole stream and pile every other table's pieces up in their queues."""
    pending: dict[str, list[pa.Table]] = {}
    for table, chunk in stream:
        pieces = pending.setdefault(table, [])
        pieces.append(chunk)
        if sum(p.num_rows for p in pieces) >= rows:
            yield from _joined(pending)
            pending = {}
    yield from _joined(pending)


def _joined(pending: dict[str, list[pa.Table]]) -> Iterator[tuple[str, pa.Table]]:
    for table, pieces in pending.items():
        if pieces:
            yield table, pa.concat_tables(pieces)


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

