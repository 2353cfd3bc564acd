"""One Google Ads account through the `google-ads` library at the pinned API version.

The library's `GoogleAdsClient` is built with its constructor from google-auth credentials:
`load_from_dict` would refresh the token at construction (a network call, against a token URL
config cannot change). The developer token is optional (Google stopped requiring it on
2026-09-09; the Cloud project's access level is what counts now).

Where the queries go: Google's endpoint over TLS; another `*.googleapis.com` host over TLS; or,
for tests and staging only, a loopback `127.0.0.1:PORT` over plaintext gRPC. The library always
builds a TLS channel, so for loopback the service is built here the way `get_service` builds
it (the library's transport, its metadata, logging and exception interceptors) on a channel
with gRPC's *local* credentials: plaintext, but gRPC itself refuses a non-local peer, and
google-auth's own metadata plugin still sends the bearer token as it does over TLS. Plaintext to
any other host is refused.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import grpc
from google.ads.googleads import client as ads_client
from google.ads.googleads.client import GoogleAdsClient
from google.ads.googleads.interceptors import (ExceptionInterceptor, LoggingInterceptor,
                                               MetadataInterceptor)
from google.ads.googleads.v26.services.services.google_ads_service import GoogleAdsServiceClient
from google.ads.googleads.v26.services.services.google_ads_service.transports.grpc import (
    GoogleAdsServiceGrpcTransport)

from cleargro_pipeline.sources.google_ads import API_VERSION, errors
from cleargro_pipeline.sources.google_ads.endpoints import (GOOGLE_ENDPOINT, Endpoint,
                                                            EndpointRefused, InvalidCustomerId,
                                                            customer_id, endpoint)

__all__ = ["AccessTokenCredentials", "AdsClient", "Endpoint", "EndpointRefused",
           "InvalidCustomerId", "customer_id", "endpoint"]

# SearchStream has no default deadline in the library: one date chunk of one report must
# finish within this (a DeadlineExceeded is retried like any transient failure).
STREAM_TIMEOUT_S = 1800.0


class AccessTokenCredentials(google.auth.credentials.Credentials):
    """google-auth credentials whose access token comes from a callable that renews it itself
    (`sources.google_oauth.token_source(tenant, "google_ads")`, which also turns
    `invalid_grant` into CredentialsRejected): asked before every request."""

    def __init__(self, token: Callable[[], str]):
        super().__init__()
        self._token = token

    def refresh(self, request: Any) -> None:
        self.token = self._token()

    def before_request(self, request: Any, method: Any, url: Any, headers: dict) -> None:
        self.refresh(request)
        self.apply(headers)


class AdsClient:
    """Queries of one customer (through a manager account when `login_customer_id` is given)."""

    def __init__(self, credentials: google.auth.credentials.Credentials, customer: str, *,
                 login_customer_id: str | None = None, developer_token: str | None = None,
                 endpoint_address: str | None = None, stream_timeout_s: float = STREAM_TIMEOUT_S):
        self.customer_id = customer_id(customer)
        self.login_customer_id = (customer_id(login_customer_id, "login customer id")
                                  if login_customer_id else None)
        self.endpoint = endpoint(endpoint_address)
        self.credentials = credentials
        self.stream_timeout_s = stream_timeout_s
        self.library = GoogleAdsClient(
            credentials=credentials, developer_token=developer_token or None,
            endpoint=self.endpoint.address, login_customer_id=self.login_customer_id,
            version=API_VERSION, use_proto_plus=False)  # plain protobuf: read fast, column by column
        self._service: GoogleAdsServiceClient | None = None

    @property
    def api_version(self) -> str:
        return API_VERSION

    @property
    def service(self) -> GoogleAdsServiceClient:
        if self._service is None:  # the channel is opened on the first query, not before
            self._service = (_plaintext_service(self.library) if self.endpoint.plaintext
                             else self.library.get_service("GoogleAdsService"))
        return self._service

    def search_stream(self, query: str) -> Iterator[Any]:
        """The response batches (`SearchGoogleAdsStreamResponse`, plain protobuf) of a GAQL
        query; a failure raises `errors.Transient` (retry the whole query) or a mapped error."""
        self._authorize()
        try:
            yield from self.service.search_stream(customer_id=self.customer_id, query=query,
                                                  timeout=self.stream_timeout_s)
        except Exception as error:  # noqa: BLE001 - classified, then raised
            mapped = errors.classify(error, self.customer_id)
            if mapped is error:
                raise
            raise mapped from None

    def _authorize(self) -> None:
        """Renew the access token before the call, outside gRPC: a refusal raised inside the
        channel's auth plugin would come back as a retryable UNAVAILABLE."""
        try:
            self.credentials.before_request(google.auth.transport.requests.Request(), "POST",
                                            f"https://{GOOGLE_ENDPOINT}/", {})
        except google.auth.exceptions.RefreshError as error:
            if getattr(error, "retryable", False):
                raise errors.Transient("token refresh") from None
            raise errors.GoogleAdsCredentialsRejected(
                f"Google Ads customer {self.customer_id}: Google refused the refresh token; the "
                "merchant must connect Google Ads again", "invalid_grant") from None
        except google.auth.exceptions.TransportError:
            raise errors.Transient("token endpoint unreachable") from None

    def close(self) -> None:
        if self._service is not None:
            self._service.transport.close()
            self._service = None


def _plaintext_service(library: GoogleAdsClient) -> GoogleAdsServiceClient:
    """GoogleAdsService on a loopback endpoint: `GoogleAdsClient.get_service` without its TLS
    channel (same transport class, channel options and interceptors, in the same order; the
    options, logger and client info are the library's module-level ones, read defensively
    because they are private)."""
    channel = GoogleAdsServiceGrpcTransport.create_channel(
        host=library.endpoint, credentials=library.credentials,
        options=getattr(ads_client, "_GRPC_CHANNEL_OPTIONS", None),
        ssl_credentials=grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP))
    channel = grpc.intercept_channel(
        channel,
        MetadataInterceptor(library.developer_token, library.login_customer_id,
                            library.linked_customer_id),
        LoggingInterceptor(getattr(ads_client, "_logger", logging.getLogger(ads_client.__name__)),
                           library.version, library.endpoint),
        ExceptionInterceptor(library.version, use_proto_plus=library.use_proto_plus))
    client_info = getattr(ads_client, "_CLIENT_INFO", None)
    transport = GoogleAdsServiceGrpcTransport(
        channel=channel, **({"client_info": client_info} if client_info is not None else {}))
    return GoogleAdsServiceClient(transport=transport)
