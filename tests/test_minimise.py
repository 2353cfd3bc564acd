import datetime as dt
from zoneinfo import ZoneInfo
import hashlib
import hmac
from decimal import Decimal

import pyarrow as pa
import pytest

from cleargro_pipeline.security.pseudonyms import hmac_pseudonymiser
from cleargro_pipeline.sources import contract
from cleargro_pipeline.sources.minimise import minimise, suppress_erased

ORDERS = contract.table(contract.SHOP, "orders")
CUSTOMERS = contract.table(contract.SHOP, "customers")
ITEMS = contract.table(contract.GA4, "items_daily")
PSEUDO = hmac_pseudonymiser(b"tenant-key", "acme")


def _orders(**extra):
    columns = {"id": pa.array([1, 2, 3]), "customer_id": pa.array([207119551, None, 207119551]),
               "total_price": pa.array(["598.94", "0.50", None]),
               "created_at": pa.array(["2008-01-10T11:00:00-05:00"] * 3).cast(contract.TS)}
    columns.update(extra)
    return pa.table(columns)


def test_output_has_exactly_the_contract_schema_and_drops_everything_else():
    pii = {"email": pa.array(["bob@hostmail.com"] * 3), "phone": pa.array(["+15556251199"] * 3),
           "browser_ip": pa.array(["10.1.2.3"] * 3), "gateway": pa.array(["bogus"] * 3),
           "payment_details": pa.array([{"credit_card_number": "4242"}] * 3)}
    out = minimise(ORDERS, _orders(**pii), PSEUDO)
    assert out.schema == ORDERS.schema  # names, order and types
    assert "customer_id" not in out.column_names
    text = str(out.to_pylist())
    for value in ("bob@hostmail.com", "+15556251199", "10.1.2.3", "bogus", "4242", "207119551"):
        assert value not in text


def test_missing_optional_columns_are_null():
    out = minimise(ORDERS, _orders(), PSEUDO)
    assert out.column("financial_status").null_count == 3
    assert out.column("total_shipping_price").type == contract.MONEY


def test_pseudonym_is_hmac_of_namespace_and_id():
    out = minimise(ORDERS, _orders(), PSEUDO)
    expected = hmac.new(b"tenant-key", b"acme:207119551", hashlib.sha256).hexdigest()
    assert out.column("customer_pseudonym").to_pylist() == [expected, None, expected]


def test_pseudonym_is_deterministic_per_key_and_differs_across_keys_and_namespaces():
    ids = pa.array(["207119551", "42"])
    same = hmac_pseudonymiser(b"tenant-key", "acme")(ids)
    assert PSEUDO(ids).equals(same)
    assert PSEUDO(ids)[0] != PSEUDO(ids)[1]
    other_key = hmac_pseudonymiser(b"another-key", "acme")(ids).to_pylist()
    other_ns = hmac_pseudonymiser(b"tenant-key", "other")(ids).to_pylist()
    assert set(PSEUDO(ids).to_pylist()).isdisjoint(other_key + other_ns)


def test_orders_and_customers_get_the_same_pseudonym_for_one_shopper():
    customers = pa.table({"id": pa.array([207119551]), "total_spent": pa.array(["41.94"])})
    out = minimise(CUSTOMERS, customers, PSEUDO)
    orders = minimise(ORDERS, _orders(), PSEUDO)
    assert out.column("customer_pseudonym")[0] == orders.column("customer_pseudonym")[0]


def test_an_id_as_integer_or_text_gets_one_pseudonym_whatever_the_cache_holds():
    # Integer and text ids are cached apart; a file drop's "42" and a live source's 42 are
    # still one shopper, also once the bounded cache has started over.
    pseudonymise = hmac_pseudonymiser(b"tenant-key", "acme", cache_size=2)
    expected = hmac.new(b"tenant-key", b"acme:42", hashlib.sha256).hexdigest()
    first = pseudonymise(pa.array([42, 7], pa.int32()))[0].as_py()
    as_text = pseudonymise(pa.array(["42", "x"], pa.large_string()))[0].as_py()
    after_reset = pseudonymise(pa.array([1, 2, 42], pa.int64()))[2].as_py()
    assert first == as_text == after_reset == expected


def test_pseudonymiser_keeps_nulls_and_accepts_chunked_input():
    chunked = pa.chunked_array([pa.array(["a", None]), pa.array(["a"])])
    out = PSEUDO(chunked)
    assert out[1].as_py() is None
    assert out[0] == out[2] and len(out[0].as_py()) == 64 and out[0].as_py() == out[0].as_py().lower()


def test_values_are_cast_to_contract_types():
    data = _orders(id=pa.array([1, 2, 3], pa.int32()),
                   created_at=pa.array([dt.datetime(2008, 1, 10, 11, tzinfo=ZoneInfo("America/New_York"))] * 3,
                                       pa.timestamp("s", tz="America/New_York")))
    out = minimise(ORDERS, data, PSEUDO)
    assert out.column("id").type == pa.int64()
    assert out.column("total_price").to_pylist() == [Decimal("598.94"), Decimal("0.50"), None]
    assert out.column("created_at")[0].as_py() == dt.datetime(2008, 1, 10, 16, tzinfo=dt.timezone.utc)


def test_uncastable_column_names_table_and_column_but_not_the_value():
    with pytest.raises(ValueError, match=r"raw_shop\.orders: column total_price") as error:
        minimise(ORDERS, _orders(total_price=pa.array(["598.94", "abc", None])), PSEUDO)
    assert "abc" not in str(error.value)


def test_missing_or_null_key_column_raises():
    with pytest.raises(ValueError, match=r"raw_ga4\.items_daily: required column itemId is missing"):
        minimise(ITEMS, pa.table({"date": pa.array([dt.date(2024, 1, 1)])}), PSEUDO)
    with pytest.raises(ValueError, match=r"raw_shop\.customers: key column id has 1 empty"):
        minimise(CUSTOMERS, pa.table({"id": pa.array([1, None])}), PSEUDO)


def test_bad_pseudonymiser_output_is_rejected():
    with pytest.raises(ValueError, match="pseudonymiser returned 1 values"):
        minimise(ORDERS, _orders(), lambda values: pa.array(["x"]))


def test_empty_key_is_refused():
    with pytest.raises(ValueError, match="must not be empty"):
        hmac_pseudonymiser(b"", "acme")


def test_pseudonyms_are_stable_when_the_cache_overflows():
    bounded = hmac_pseudonymiser(b"k" * 32, "acme", cache_size=3)
    unbounded = hmac_pseudonymiser(b"k" * 32, "acme")
    first, second = pa.array([1, 2, 3, 2, None]), pa.array([4, 5, 1, 6])
    assert bounded(first).to_pylist() == unbounded(first).to_pylist()
    assert bounded(second).to_pylist() == unbounded(second).to_pylist()
    assert bounded(first).to_pylist()[0] == unbounded(pa.array(["1"])).to_pylist()[0]


def test_suppress_erased_drops_customer_records_and_unlinks_orders():
    gone, kept = "a" * 64, "b" * 64
    customers = contract.table("raw_shop", "customers")
    rows = pa.table({"customer_pseudonym": [gone, kept], "orders_count": [3, 1]})
    assert suppress_erased(customers, rows, frozenset({gone})).to_pylist() == \
        [{"customer_pseudonym": kept, "orders_count": 1}]
    orders = contract.table("raw_shop", "orders")
    rows = pa.table({"id": [1, 2, 3], "customer_pseudonym": [gone, kept, None]})
    assert suppress_erased(orders, rows, frozenset({gone})).to_pylist() == \
        [{"id": 1, "customer_pseudonym": None}, {"id": 2, "customer_pseudonym": kept},
         {"id": 3, "customer_pseudonym": None}]
    products = contract.table("raw_shop", "products")
    assert suppress_erased(products, rows, frozenset({gone})) is rows
    assert suppress_erased(orders, rows, frozenset()) is rows
