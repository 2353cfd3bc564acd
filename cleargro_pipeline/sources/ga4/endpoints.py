"""Where a property's report requests go: Google's Data API, or a loopback base URL for tests
and staging. Nothing else is accepted, so a configured endpoint cannot send a merchant's token
anywhere else. (Standard library only: the CLI validates settings without loading dlt.)"""

from __future__ import annotations

import re

from cleargro_pipeline.errors import CleargroError
from cleargro_pipeline.sources.shopify.endpoints import EndpointRefused, loopback_endpoint

API_BASE = "https://analyticsdata.googleapis.com"
API_VERSION = "v1beta"
# GA4's property id: digits only (not the `G-XXXX` measurement id of a web stream).
PROPERTY_ID = re.compile(r"^[1-9][0-9]{0,19}$")


class PropertyIdInvalid(CleargroError, ValueError):
    """Not a numeric GA4 property id."""


def valid_property_id(value: str | int) -> str:
    """The property id as the API's path wants it; raises PropertyIdInvalid otherwise."""
    text = str(value).strip().removeprefix("properties/")
    if PROPERTY_ID.match(text):
        return text
    hint = " (a G- measurement id names a web stream, not the property)" \
        if text.upper().startswith("G-") else ""
    raise PropertyIdInvalid("a GA4 property id is the property's number (Admin > Property "
                            f"details, e.g. 123456789){hint}")


def api_base(endpoint: str | None = None) -> str:
    """Google's Data API, or the loopback base URL that replaces it."""
    if not endpoint:
        return API_BASE
    try:
        return loopback_endpoint(endpoint)
    except EndpointRefused:
        raise EndpointRefused("ga4 endpoint refused: only a loopback base URL "
                              "(http://127.0.0.1:PORT) may replace analyticsdata.googleapis.com"
                              ) from None


def method_url(base: str, prop: str, method: str) -> str:
    """`POST {base}/v1beta/properties/{id}:{method}` (runReport, checkCompatibility)."""
    return f"{base}/{API_VERSION}/properties/{valid_property_id(prop)}:{method}"
