"""The live Shopify source: the GraphQL Admin API at one pinned version, into `raw_shop.*`.

Plain dlt, no Dagster: `documents` holds what is asked (never a shopper's name, email, phone,
address, IP or payment details), `client` how (retries, cost pacing, version check),
`bulk` the bulk operations of a first sync, `columns` how lines become contract tables (Arrow
compute, column by column), and `source` the provider `sources.raw.contract_source` pulls each
table's chunks from.
"""

# The one pinned Admin API version (quarterly releases, each supported for 12 months).
API_VERSION = "2026-10"
# The tenant's secret holding the shop's Admin API access token (named as every source
# credential is: `cleargro disconnect --source shop` deletes it).
TOKEN_SECRET = "source.shop.access_token"

__all__ = ["API_VERSION", "TOKEN_SECRET"]
