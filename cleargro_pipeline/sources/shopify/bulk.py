"""Bulk operations: run a query on Shopify's side, poll it, stream its JSONL result.

`bulkOperationRunQuery` starts it; `bulkOperation(id:)` is polled with growing pauses up to a
time limit (`currentBulkOperation` is deprecated since 2026-01). The result is read from the
download stream in blocks of whole lines, each parsed by Arrow's JSON reader into a table of
the document's line schema, two blocks ahead of the caller on a thread of their own: never
held whole, never written to disk. Since 2026-01 a child line (a nested connection's node,
with `__parentId`) need not follow its parent, so callers link children by `__parentId`,
never by position. A failed, cancelled or expired operation, a `userErrors` answer, and a
result with fewer lines than Shopify counted are errors naming the operation, never a silent
partial load.
"""

from __future__ import annotations

import io
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.json as pa_json

from cleargro_pipeline.sources.shopify.client import ShopifyClient, ShopifyError

RUN = """mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } }
}"""
POLL = """query PollBulk($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount fileSize url partialDataUrl }
}"""
FIRST_PAUSE_S, MAX_PAUSE_S = 0.2, 10.0
TIME_LIMIT_S = 6 * 3600
BLOCK_BYTES = 4 << 20  # lines parsed at once
READ_AHEAD = 2  # blocks downloaded and parsed ahead of the one the caller converts


class BulkOperationFailed(ShopifyError):
    """The operation did not complete, or its result is not whole."""


def run(client: ShopifyClient, query: str, *, name: str, schema: pa.Schema,
        time_limit_s: float = TIME_LIMIT_S, first_pause_s: float = FIRST_PAUSE_S
        ) -> Iterator[pa.Table]:
    """The result lines of one bulk query, streamed in blocks of `schema` (fields the lines
    carry beyond it are ignored)."""
    yield from read(client, start(client, query, name=name), name=name, schema=schema,
                    time_limit_s=time_limit_s, first_pause_s=first_pause_s)


def read(client: ShopifyClient, operation: str, *, name: str, schema: pa.Schema,
         time_limit_s: float = TIME_LIMIT_S, first_pause_s: float = FIRST_PAUSE_S,
         on_finished: Callable[[], None] | None = None) -> Iterator[pa.Table]:
    """The result of a started operation; `on_finished` is told when it completed on
    Shopify's side (it no longer counts against the shop's running operations)."""
    finished = wait(client, operation, name=name, time_limit_s=time_limit_s,
                    first_pause_s=first_pause_s)
    if on_finished:
        on_finished()
    if not finished.get("url"):  # a query that matched nothing has no file
        if int(finished.get("objectCount") or 0):
            raise BulkOperationFailed(f"bulk operation {operation} ({name}) completed without "
                                      "a result URL but counted objects")
        return
    yield from read_ahead(blocks(client, finished["url"], operation=operation, name=name,
                                 schema=schema, expected=int(finished.get("objectCount") or 0)))


def read_ahead(source: Iterator[pa.Table], depth: int = READ_AHEAD) -> Iterator[pa.Table]:
    """`source`'s blocks, the next `depth` of them read on a thread of their own: Arrow parses
    a block (without the GIL) while the caller converts the one before. Memory stays bounded
    by `depth` blocks; an error of `source` is raised here, in order; when the caller stops
    early, `source` is closed (its download with it) on the thread that reads it."""
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopify-bulk-read") as reader:
        pending = deque(reader.submit(next, source, end) for _ in range(depth))
        try:
            while (block := pending.popleft().result()) is not end:
                pending.append(reader.submit(next, source, end))
                yield block
        finally:
            for ahead in pending:
                ahead.cancel()
            reader.submit(source.close).result()


def start(client: ShopifyClient, query: str, *, name: str) -> str:
    answer = client.query(RUN, {"query": query}, name=f"bulk {name}")["bulkOperationRunQuery"]
    errors = (answer or {}).get("userErrors") or []
    if errors:
        detail = "; ".join(f"{e.get('code') or 'ERROR'}: {str(e.get('message'))[:160]}" for e in errors)
        raise BulkOperationFailed(f"shop {client.shop}: bulk query {name} refused: {detail}")
    operation = ((answer or {}).get("bulkOperation") or {}).get("id")
    if not operation:
        raise BulkOperationFailed(f"shop {client.shop}: bulk query {name} returned no operation")
    return operation


def wait(client: ShopifyClient, operation: str, *, name: str, time_limit_s: float,
         first_pause_s: float) -> dict[str, Any]:
    """Poll until the operation ends; its final state if COMPLETED."""
    deadline, pause = time.monotonic() + time_limit_s, first_pause_s
    while True:
        state = client.query(POLL, {"id": operation}, name="bulk poll")["bulkOperation"] or {}
        status = state.get("status")
        if status == "COMPLETED":
            return state
        if status in ("FAILED", "CANCELED", "CANCELING", "EXPIRED") or status is None:
            code = f" ({state.get('errorCode')})" if state.get("errorCode") else ""
            raise BulkOperationFailed(f"shop {client.shop}: bulk operation {operation} ({name}) "
                                      f"ended {status or 'unknown'}{code}; nothing of it was loaded")
        if time.monotonic() + pause > deadline:
            raise BulkOperationFailed(f"shop {client.shop}: bulk operation {operation} ({name}) "
                                      f"still {status} after {time_limit_s:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)


def blocks(client: ShopifyClient, url: str, *, operation: str, name: str, schema: pa.Schema,
           expected: int, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    response = client.download(url)
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    count, rest = 0, b""
    try:
        for chunk in response.iter_content(chunk_size=block_bytes):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if not cut:
                rest = data
                continue
            rest = data[cut:]
            table = _parse(data[:cut], options, operation, name, count)
            count += table.num_rows
            yield table
        if rest.strip():
            table = _parse(rest, options, operation, name, count)
            count += table.num_rows
            yield table
    finally:
        response.close()
    if expected and count < expected:
        raise BulkOperationFailed(f"bulk operation {operation} ({name}): the result stops after "
                                  f"{count} of {expected} objects; nothing of it was loaded")


def _parse(data: bytes, options: Any, operation: str, name: str, before: int) -> pa.Table:
    try:
        return pa_json.read_json(io.BytesIO(data), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Arrow's message may quote the line: name the operation and where, not the value.
        raise BulkOperationFailed(f"bulk operation {operation} ({name}): a line after object "
                                  f"{before} is not the JSON the query asked for (cut short?); "
                                  "nothing of it was loaded") from None
