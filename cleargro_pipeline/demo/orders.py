"""One month of orders, line items and refunds, generated column-wise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .calendar import Calendar
from .catalog import Catalog, customer_ids, sample_variants, shopper_identity
from .demand import Demand
from .prices import PriceHistory
from .columns import US_PER_DAY, US_PER_HOUR, build, int_str, join, money, strings, ts

CODES = ["", "WELCOME10", "VIP15", "SAVE20", "BFCM25"]
CODE_PCT = np.array([0, 10, 15, 20, 25])
CANCEL_REASONS = ["customer", "inventory", "fraud", "declined", "other"]
FINANCIAL = ["paid", "voided", "refunded", "partially_refunded"]
SOURCES = ["web", "pos", "shopify_draft_order"]
TAX_BP = np.array([0, 600, 725, 800, 875])  # US sales-tax rates in basis points
FREE_SHIPPING_FROM, SHIPPING = 7_500, 695  # cents

ORDER_ID0, LINE_ID0 = 5_610_000_000_000, 13_800_000_000_000
REFUND_ID0, REFUND_LINE_ID0 = 910_000_000_000, 980_000_000_000_000
MAX_LINES = 16  # line ids are order index * 16 + line number: no cross-chunk counter needed


@dataclass
class OrdersMonth:
    g: np.ndarray  # global order index
    created: np.ndarray
    updated: np.ndarray
    cancelled: np.ndarray
    cancel_time: np.ndarray
    cancel_reason: np.ndarray
    closed: np.ndarray
    closed_time: np.ndarray
    financial: np.ndarray
    fulfilled: np.ndarray
    lines_total: np.ndarray
    discounts: np.ndarray
    subtotal: np.ndarray
    tax: np.ndarray
    shipping: np.ndarray
    total: np.ndarray
    test: np.ndarray
    source: np.ndarray
    code: np.ndarray
    customer: np.ndarray
    ip: np.ndarray  # (n, 4) octets
    # line items
    line_order: np.ndarray  # local order index
    line_no: np.ndarray
    variant: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    line_discount: np.ndarray
    location: np.ndarray  # location index each line ships from
    # refunds, one row per refunded line
    refund_line: np.ndarray
    refund_qty: np.ndarray
    refund_subtotal: np.ndarray
    refund_time: np.ndarray

    @property
    def day(self) -> np.ndarray:
        return self.created // US_PER_DAY

    def counted(self) -> np.ndarray:
        """Orders that count as sales: neither test nor cancelled."""
        return ~self.test & ~self.cancelled

    def line_net(self) -> np.ndarray:
        return self.price * self.qty - self.line_discount

    def line_ids(self, lines: np.ndarray | None = None) -> np.ndarray:
        lines = np.arange(len(self.line_order)) if lines is None else lines
        return LINE_ID0 + self.g[self.line_order[lines]] * MAX_LINES + self.line_no[lines]


def _bfcm(day: np.ndarray) -> np.ndarray:
    d = day.astype("datetime64[D]")
    month = d.astype("datetime64[M]").astype(int) % 12 + 1
    dom = (d - d.astype("datetime64[M]")).astype(int) + 1
    return ((month == 11) & (dom >= 22)) | ((month == 12) & (dom <= 3))


@dataclass
class OrderInputs:
    """What a month of orders needs beyond the catalogue and calendar."""
    demand: Demand
    prices: PriceHistory
    n_locations: int
    faulty: np.ndarray  # planted variants with a faulty batch: often returned...
    faulty_since: int  # ...when sold on or after this day
    veto: np.ndarray | None = None  # sorted line ids whose refund is taken back (bounds refund rates)


FAULTY_RETURN_P = 0.35
CHEAP = 10_000  # cents: dearer items sell one at a time


def generate_month(cat: Catalog, cal: Calendar, m: int, rng: np.random.Generator, inp: OrderInputs) -> OrdersMonth:
    a, b = cal.month_bounds[m]
    counts = cal.counts[a:b]
    n = int(counts.sum())
    day = np.repeat(cal.days[a:b], counts)
    hour = rng.choice(24, n, p=cal.hour_weights(False))
    last = day == cal.as_of
    hour[last] = rng.choice(24, int(last.sum()), p=cal.hour_weights(True))
    created = np.sort(day * US_PER_DAY + hour * US_PER_HOUR + rng.integers(0, US_PER_HOUR, n))
    day = created // US_PER_DAY

    # New customers get the next indexes in time order; returning ones come from
    # earlier months, biased to recent customers (density grows with the index).
    c0, n_new = int(cal.customer_offset[m]), int(cal.new_customers[m])
    is_new = np.zeros(n, bool)
    is_new[rng.choice(n, n_new, replace=False)] = True
    customer = np.empty(n, np.int64)
    customer[is_new] = c0 + np.arange(n_new)
    customer[~is_new] = np.floor(c0 * np.sqrt(rng.random(n - n_new))).astype(np.int64)

    # The day's lines come from the demand quotas, shuffled, one per order plus the
    # rest spread at random over the day's orders.
    q_day, q_var = inp.demand.quotas(m)
    keep = counts[q_day] > 0
    q_day, q_var = q_day[keep], q_var[keep]
    short = np.maximum(counts - np.bincount(q_day, minlength=b - a), 0)
    if short.any():  # fewer lines than orders (a tiny day): top up at random
        q_day = np.r_[q_day, np.repeat(np.arange(b - a), short)]
        q_var = np.r_[q_var, sample_variants(cat, rng, int(short.sum()))]
    order = np.lexsort((rng.random(len(q_day)), q_day))
    variant = q_var[order]
    per_day = np.bincount(q_day, minlength=b - a)
    extra_day = np.repeat(np.arange(b - a), per_day - counts)
    first = np.cumsum(counts) - counts
    pick = first[extra_day] + np.floor(rng.random(len(extra_day)) * counts[extra_day]).astype(np.int64)
    k = 1 + np.bincount(pick, minlength=n)
    assert k.max() <= MAX_LINES, "an order with more lines than line ids allow"
    start = np.cumsum(k) - k
    line_order = np.repeat(np.arange(n), k)
    line_no = np.arange(len(line_order)) - start[line_order]
    n_l = len(line_order)
    qty = 1 + np.where(cat.price[variant] < CHEAP, np.minimum(rng.poisson(0.2, n_l), 4), 0)
    price = inp.prices.price_at(variant, created[line_order])
    gross = price * qty

    u = rng.random(n)
    code = np.select([u < 0.08, u < 0.11, u < 0.14], [1, 2, 3], 0)
    code = np.where(_bfcm(day) & (u < 0.35), 4, code)  # a third of the peak's orders use BFCM25
    line_discount = np.round(gross * CODE_PCT[code][line_order] / 100).astype(np.int64)
    lines_total = np.add.reduceat(gross, start)
    discounts = np.add.reduceat(line_discount, start)
    subtotal = lines_total - discounts
    source = rng.choice(3, n, p=[0.93, 0.05, 0.02])
    shipping = np.where((subtotal >= FREE_SHIPPING_FROM) | (source == 1), 0, SHIPPING)
    tax = np.round(subtotal * TAX_BP[rng.integers(0, len(TAX_BP), n)] / 10_000).astype(np.int64)
    test = rng.random(n) < 0.004
    # POS sales leave from the last location (the showroom), online ones from the warehouses.
    location = np.where(source[line_order] == 1, inp.n_locations - 1,
                        (rng.random(n_l) < 0.33).astype(np.int64) % (inp.n_locations - 1))

    # Later events only exist if they happened by the end of the as-of day.
    cutoff = (cal.as_of + 1) * US_PER_DAY
    cancel_time = created + rng.integers(US_PER_HOUR // 2, 48 * US_PER_HOUR, n)
    cancelled = (rng.random(n) < 0.02) & (cancel_time < cutoff)
    cancel_reason = rng.choice(len(CANCEL_REASONS), n, p=[0.45, 0.2, 0.1, 0.1, 0.15])
    fulfil_time = created + np.where(source == 1, 0, rng.integers(4 * US_PER_HOUR, 72 * US_PER_HOUR, n))
    fulfilled = ~cancelled & (fulfil_time < cutoff)
    refund_time = fulfil_time + rng.integers(2 * US_PER_DAY, 25 * US_PER_DAY, n)
    can_refund = fulfilled & ~test & (refund_time < cutoff)
    asked = (rng.random(n) < 0.07) & can_refund
    full = rng.random(n) < 0.35
    closed = fulfilled | cancelled
    closed_time = np.where(cancelled, cancel_time, fulfil_time)

    # Full refunds return every line; partial ones one unit of the first line. Lines of a
    # planted faulty batch come back on their own, whole.
    faulty = (np.isin(variant, inp.faulty) & (day[line_order] >= inp.faulty_since)
              & (rng.random(n_l) < FAULTY_RETURN_P) & can_refund[line_order])
    rmask = (asked[line_order] & (full[line_order] | (line_no == 0))) | faulty
    if inp.veto is not None and len(inp.veto):
        rmask &= ~np.isin(LINE_ID0 + cal.order_offset[m] * MAX_LINES + line_order * MAX_LINES + line_no, inp.veto)
    refund_line = np.flatnonzero(rmask)
    refund_qty = np.where(full[line_order] | faulty, qty, 1)[refund_line]
    refund_subtotal = np.round((gross - line_discount)[refund_line] * refund_qty / qty[refund_line]).astype(np.int64)
    refunded_units = np.bincount(line_order[refund_line], weights=refund_qty, minlength=n)
    refunded = refunded_units > 0
    all_back = refunded_units >= np.add.reduceat(qty, start)
    financial = np.select([cancelled, refunded & all_back, refunded], [1, 2, 3], 0)
    updated = np.maximum.reduce([created, np.where(closed, closed_time, 0),
                                 np.where(refunded, refund_time, 0)])
    return OrdersMonth(
        g=cal.order_offset[m] + np.arange(n), created=created, updated=updated,
        cancelled=cancelled, cancel_time=cancel_time, cancel_reason=cancel_reason,
        closed=closed, closed_time=closed_time, financial=financial, fulfilled=fulfilled,
        lines_total=lines_total, discounts=discounts, subtotal=subtotal, tax=tax,
        shipping=shipping, total=subtotal + shipping + tax, test=test, source=source, code=code,
        customer=customer, ip=rng.integers(1, 255, (n, 4)),
        line_order=line_order, line_no=line_no, variant=variant, qty=qty, price=price,
        line_discount=line_discount, location=location, refund_line=refund_line, refund_qty=refund_qty,
        refund_subtotal=refund_subtotal, refund_time=refund_time[line_order[refund_line]],
    )


def orders_table(om: OrdersMonth) -> pa.Table:
    n = len(om.g)
    shopper = shopper_identity(om.customer)
    ip = join(*[int_str(om.ip[:, i]) for i in range(4)], sep=".")
    return build("raw_shop", "orders", {
        "id": pa.array(ORDER_ID0 + om.g), "name": join("#", int_str(1001 + om.g)),
        "order_number": pa.array(1001 + om.g), "created_at": ts(om.created),
        "processed_at": ts(om.created), "updated_at": ts(om.updated),
        "cancelled_at": ts(om.cancel_time, om.cancelled),
        "cancel_reason": strings(CANCEL_REASONS, om.cancel_reason, om.cancelled),
        "closed_at": ts(om.closed_time, om.closed),
        "financial_status": strings(FINANCIAL, om.financial),
        "fulfillment_status": strings(["fulfilled"], np.zeros(n, np.int64), om.fulfilled),
        "currency": strings(["USD"], np.zeros(n, np.int64)),
        "total_price": money(om.total), "subtotal_price": money(om.subtotal),
        "total_discounts": money(om.discounts), "total_tax": money(om.tax),
        "total_line_items_price": money(om.lines_total), "total_shipping_price": money(om.shipping),
        "test": pa.array(om.test), "source_name": strings(SOURCES, om.source),
        "discount_codes": strings(CODES, om.code, om.code > 0),
        "customer_id": pa.array(customer_ids(om.customer)), "email": shopper["email"],
        "phone": shopper["phone"], "browser_ip": strings(ip, valid=om.source != 1),
    })


def lines_table(om: OrdersMonth, cat: Catalog) -> pa.Table:
    product = cat.product[om.variant]
    return build("raw_shop", "order_line_items", {
        "id": pa.array(om.line_ids()),
        "order_id": pa.array(ORDER_ID0 + om.g[om.line_order]),
        "product_id": pa.array(cat.product_id[product]), "variant_id": pa.array(cat.variant_id[om.variant]),
        "sku": cat.sku.take(pa.array(om.variant)), "title": cat.title.take(pa.array(product)),
        "quantity": pa.array(om.qty), "price": money(om.price),
        "total_discount": money(om.line_discount),
        "order_updated_at": ts(om.updated[om.line_order]),
    })


def refunds_table(om: OrdersMonth) -> pa.Table:
    r = om.refund_line
    order = om.line_order[r]
    return build("raw_shop", "order_refund_line_items", {
        "id": pa.array(REFUND_LINE_ID0 + om.g[order] * MAX_LINES + om.line_no[r]),
        "refund_id": pa.array(REFUND_ID0 + om.g[order]), "order_id": pa.array(ORDER_ID0 + om.g[order]),
        "line_item_id": pa.array(om.line_ids(r)), "quantity": pa.array(om.refund_qty),
        "subtotal": money(om.refund_subtotal), "created_at": ts(om.refund_time),
        "order_updated_at": ts(om.updated[order]),
    })
