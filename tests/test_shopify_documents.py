"""The connector's GraphQL documents against Shopify's own Admin schema (2026-01 SDL from the
shared fixtures): every field exists, and none reaches a shopper's identity or payment."""

from __future__ import annotations

import functools

import graphql
import pytest

from cleargro_pipeline.sources.shopify import bulk
from cleargro_pipeline.sources.shopify.documents import BY_TABLE, DOCUMENTS, ORDERS, access_scopes

from conftest import FIXTURES

# Never selected (Shopify's protected customer data above level 1, and payment details).
PERSONAL_TYPES = {"MailingAddress", "CustomerEmailAddress", "CustomerPhoneNumber",
                  "OrderTransaction", "PaymentDetails", "CustomerPaymentMethodConnection"}
PERSONAL_FIELDS = {"email", "phone", "firstName", "lastName", "displayName", "clientIp",
                   "note", "customAttributes", "billingAddress", "shippingAddress",
                   "displayAddress", "defaultAddress", "addresses", "addressesV2",
                   "paymentGatewayNames", "transactions", "browserIp", "customerLocale"}


@functools.cache
def admin_schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(
        (FIXTURES / "shopify_graphql" / "admin-2026-01.schema.graphql").read_text())


def _all_documents() -> list[tuple[str, str]]:
    out = [("bulk run", bulk.RUN), ("bulk poll", bulk.POLL)]
    for doc in DOCUMENTS:
        out += [(f"{doc.name} pages", doc.paged()),
                (f"{doc.name} bulk", doc.bulk("updated_at:>='2026-11-01T00:00:00Z'")),
                (f"{doc.name} first bulk", doc.bulk(None))]
        out += [(f"{doc.name} {n.field}", doc.rest_of(n)) for n in doc.nested]
        out += [(f"{doc.name} {n.field} owners", n.owners()) for n in doc.nested if n.inside]
        if doc.shopper:
            out += [(f"{doc.name} without shopper", doc.without_shopper().paged())]
    return out


@pytest.mark.parametrize("name,document", _all_documents(), ids=lambda v: v if " " in v else "")
def test_document_is_valid_against_shopifys_schema(name, document):
    errors = graphql.validate(admin_schema(), graphql.parse(document))
    assert not errors, f"{name}: {[e.message for e in errors]}"


def _selected(document: str) -> list[tuple[str, str, str]]:
    """(parent type, field, field's named type) of every field the document selects."""
    schema, seen = admin_schema(), []
    info = graphql.TypeInfo(schema)

    class Visitor(graphql.Visitor):
        def enter_field(self, node, *_):
            parent, definition = info.get_parent_type(), info.get_field_def()
            if parent and definition:
                seen.append((parent.name, node.name.value,
                             graphql.get_named_type(definition.type).name))

    graphql.visit(graphql.parse(document), graphql.TypeInfoVisitor(info, Visitor()))
    return seen


def test_no_document_selects_a_shoppers_identity_or_payment():
    for name, document in _all_documents():
        for parent, field, type_name in _selected(document):
            assert type_name not in PERSONAL_TYPES, f"{name}: {parent}.{field} is {type_name}"
            assert field not in PERSONAL_FIELDS, f"{name}: selects {parent}.{field}"
            if parent == "Customer":  # level 1: the id and the customer's order statistics
                assert field in {"id", "createdAt", "updatedAt", "numberOfOrders",
                                 "amountSpent", "state"}, f"{name}: selects Customer.{field}"


def test_the_pii_check_sees_a_planted_field():
    """The check above can fail: a document that selects an email is caught."""
    fields = _selected("{ orders(first: 1) { edges { node { id email customer { id } } } } }")
    assert ("Order", "email", "String") in fields


def test_an_install_asks_only_for_the_scopes_the_tenants_data_scope_reads():
    everything = access_scopes(BY_TABLE)
    assert everything == ("read_products", "read_inventory", "read_locations", "read_orders",
                          "read_customers")
    # Nothing per shopper: neither the customers nor the orders' customer, so no read_customers.
    assert access_scopes(BY_TABLE, shopper_level=False) == everything[:-1]
    assert access_scopes(["products"]) == ("read_products",)
    assert access_scopes(["orders", "order_line_items"]) == ("read_orders", "read_customers")
    assert access_scopes(["orders"], shopper_level=False) == ("read_orders",)
    assert access_scopes(["locations"]) == ("read_inventory", "read_locations")
    assert access_scopes([]) == () and access_scopes(["variant_price_history"]) == ()


def test_without_shopper_level_no_document_selects_the_shopper():
    assert "customer { id }" in ORDERS.bulk(None) and "customer { id }" in ORDERS.paged()
    bare = ORDERS.without_shopper()
    assert "customer" not in bare.bulk(None) and "customer" not in bare.paged()
