"""The live Google Ads source: `GoogleAdsService.search_stream` at one pinned API version, into
`raw_google_ads.*`.

Plain code on the `google-ads` library, no Dagster: `endpoints` checks the customer ids and
where queries may go (standard library only, for the CLI); `client` builds the library's client from
google-auth credentials (no network call at construction) and talks TLS to Google, or plaintext
gRPC to a loopback test server only; `errors` maps the API's failures by kind; `reports` holds
the GAQL of the four contract reports and turns each streamed batch into Arrow, column by
column; `source` is the provider `sources.raw.contract_source` pulls each table's chunks from
(a backfill, then a trailing window re-read on every sync).
"""

# The one pinned Google Ads API version (google-ads 34 serves v23 to v26; each major version
# lives about a year, and GAQL field names change between them).
API_VERSION = "v26"
# The tenant's secret holding the Google refresh token (`google_oauth` seals it).
TOKEN_SECRET = "source.google_ads.refresh_token"

__all__ = ["API_VERSION", "TOKEN_SECRET"]
