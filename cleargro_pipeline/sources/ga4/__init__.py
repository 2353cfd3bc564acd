"""The live GA4 source: the Google Analytics Data API (v1beta, REST), into `raw_ga4.*`.

Plain dlt, no Dagster: `endpoints` says where requests go (Google, or a loopback fake),
`client` how (bearer token, retries, quota, paging, compatibility check), `reports` what is
asked and how an answer becomes a contract table (Arrow compute, column by column), and
`source` the provider `sources.raw.contract_source` pulls each table's chunks from.
"""

# The tenant's secret holding the Google refresh token (sources/google_oauth.py seals it).
TOKEN_SECRET = "source.ga4.refresh_token"

__all__ = ["TOKEN_SECRET"]
