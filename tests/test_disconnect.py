"""`cleargro disconnect`: OAuth revocation against a fake revoke endpoint on 127.0.0.1 (plain http
and TLS with a test CA), credentials deleted, syncing stopped, and with `--delete-data` the
source's raw tables dropped and its marts rebuilt empty on a private copy of the session demo
(conftest `built_demo`), with the other sources' marts unchanged and the tenant still building.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import private_demo
from delivery_servers import make_pki, server_context

from cleargro_pipeline import ingest, tenants, warehouse
from cleargro_pipeline.controls import disconnect as dc
from cleargro_pipeline.controls import oauth
from cleargro_pipeline.security import secret_store
from cleargro_pipeline.settings import paths

GA4_TOKEN = "1//0g-ga4-refresh-CANARY-7f3a9c"
ADS_REFRESH = "1//0g-ads-refresh-CANARY-51bd"
ADS_ACCESS = "ya29.ads-access-CANARY-9e2f"
SHOP_TOKEN = "shpat_shop-offline-CANARY-0c1d"


# --- a fake RFC 7009 endpoint --------------------------------------------------------------

@dataclass
class RevokeServer:
    """Records every POST; answers 200 for a token it has not revoked yet, 400 invalid_token
    for one it has (as Google does), or `status` for everything when set."""
    url: str = ""
    requests: list[dict] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    status: int | None = None
    tls_versions: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> list[str]:
        return [t for r in self.requests for t in r["form"].get("token", [])]


def _serve(tls=None):
    state = RevokeServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            form = urllib.parse.parse_qs(body.decode())
            with lock:
                state.requests.append({"path": self.path, "form": form,
                                       "content_type": self.headers.get("Content-Type")})
                if tls is not None:
                    state.tls_versions.append(self.connection.version())
                token = form.get("token", [""])[0]
                if state.status is not None:
                    status, reply = state.status, {"error": "server_error",
                                                  "error_description": f"echo {token}"}
                elif token in state.revoked or not token:
                    status, reply = 400, {"error": "invalid_token",
                                          "error_description": "Token expired or revoked"}
                else:
                    state.revoked.add(token)
                    status, reply = 200, {}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/revoke"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, state


@pytest.fixture
def revoke_server():
    server, state = _serve()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_revoke_server(tmp_path):
    pki = make_pki(tmp_path)
    server, state = _serve(server_context(pki))
    yield state, pki
    server.shutdown()
    server.server_close()


# --- oauth.revoke ----------------------------------------------------------------------------

def test_revoke_posts_the_token_form_encoded_and_treats_invalid_token_as_done(revoke_server):
    assert oauth.revoke(GA4_TOKEN, endpoint=revoke_server.url) == oauth.REVOKED
    assert revoke_server.requests == [{"path": "/revoke", "form": {"token": [GA4_TOKEN]},
                                       "content_type": "application/x-www-form-urlencoded"}]
    # Already revoked (400 invalid_token): the state we want, not an error.
    assert oauth.revoke(GA4_TOKEN, endpoint=revoke_server.url) == oauth.ALREADY_REVOKED


@pytest.mark.parametrize("status", [400, 401, 500, 503])
def test_other_answers_fail_without_the_token_in_the_message(revoke_server, status):
    revoke_server.status = status
    with pytest.raises(oauth.RevokeFailed) as failed:
        oauth.revoke(GA4_TOKEN, endpoint=revoke_server.url)
    message = str(failed.value)
    assert f"HTTP {status}" in message and "127.0.0.1" in message
    assert GA4_TOKEN not in message and "CANARY" not in message  # the server echoed it back
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_revoke_speaks_tls_12_or_newer_and_verifies_the_server(tls_revoke_server):
    state, pki = tls_revoke_server
    assert oauth.revoke(GA4_TOKEN, endpoint=state.url, ca_file=str(pki.ca_file)) == oauth.REVOKED
    assert state.tls_versions and all(v in ("TLSv1.2", "TLSv1.3") for v in state.tls_versions)
    with pytest.raises(oauth.RevokeFailed, match="CERTIFICATE_VERIFY_FAILED") as failed:
        oauth.revoke(ADS_REFRESH, endpoint=state.url)  # no test CA: the server is not trusted
    assert ADS_REFRESH not in str(failed.value)
    assert state.tokens == [GA4_TOKEN]


@pytest.mark.parametrize("endpoint", ["http://localhost:9/revoke", "http://10.0.0.1/revoke",
                                      "ftp://127.0.0.1/revoke", "oauth2.googleapis.com/revoke"])
def test_plain_http_only_to_127_0_0_1(endpoint):
    with pytest.raises(oauth.RevokeFailed, match="must be https://"):
        oauth.revoke(GA4_TOKEN, endpoint=endpoint)


def test_unreachable_endpoint_fails_cleanly():
    from delivery_servers import free_port
    with pytest.raises(oauth.RevokeFailed, match="ConnectionRefusedError") as failed:
        oauth.revoke(GA4_TOKEN, endpoint=f"http://127.0.0.1:{free_port()}/revoke")
    assert GA4_TOKEN not in str(failed.value)


# --- disconnect: credentials and syncing ---------------------------------------------------------

@pytest.fixture
def connected(tenant):
    """acme syncs every demo source and holds credentials for three of them."""
    for system, config in tenants.demo_sources("small").items():
        tenants.configure_source(tenant, system, config)
    tenants.configure_source(tenant, "shop", {**tenants.get(tenant).sources["shop"],
                                              "shop_domain": "acme.myshopify.com"})
    secret_store.put(tenant, dc.credential_name("ga4", "refresh_token"), GA4_TOKEN)
    secret_store.put(tenant, dc.credential_name("google_ads", "refresh_token"), ADS_REFRESH)
    secret_store.put(tenant, dc.credential_name("google_ads", "access_token"), ADS_ACCESS)
    secret_store.put(tenant, dc.credential_name("google_ads", "developer_token"), "dev-token")
    secret_store.put(tenant, dc.credential_name("shop", "access_token"), SHOP_TOKEN)
    secret_store.put(tenant, "alerts.webhook.1", "https://hooks.example/abc")  # not a source's
    return tenant


def _audit() -> list[dict]:
    return [json.loads(line) for line in paths().audit_log.read_text().splitlines()]


def test_disconnect_revokes_once_deletes_the_credentials_and_stops_syncing(connected,
                                                                           revoke_server):
    report = dc.disconnect(connected, "ga4", revoke_endpoint=revoke_server.url)
    assert revoke_server.tokens == [GA4_TOKEN]  # exactly the stored token, exactly once
    assert report.revoked == report.deleted_credentials == ["source.ga4.refresh_token"]
    assert report.was_synced and not report.data_deleted
    assert secret_store.names(connected) == [
        "alerts.webhook.1", "source.google_ads.access_token", "source.google_ads.developer_token",
        "source.google_ads.refresh_token", "source.shop.access_token"]

    config = tenants.get(connected)
    assert "ga4" not in tenants.synced_sources(config) and "ga4" not in config.sources
    assert set(tenants.synced_sources(config)) == {"shop", "google_ads", "app"}
    record = config.disconnected_sources["ga4"]
    assert record["kind"] == "demo" and record["data_deleted"] is False
    assert record["config"] == {"kind": "demo", "size": "small", "seed": 7}
    assert record["disconnected_at"].endswith("+00:00")

    entry = [e for e in _audit() if e["action"] == "source_disconnected"][-1]
    assert entry["tenant"] == connected and entry["detail"]["source"] == "ga4"
    assert entry["detail"]["revoked"] == ["source.ga4.refresh_token"]
    for place in (paths().audit_log, paths().registry / connected / "tenant.json"):
        assert "CANARY" not in place.read_text()

    # A following (synced) load does not touch the source; the others still load.
    assert ingest.load(connected, ingest.DemoPlan(size="small"), ("ga4",)) == []
    with warehouse.open_warehouse(connected, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*) from duckdb_schemas() where database_name = 'wh' "
                            "and starts_with(schema_name, 'raw_')").fetchone() == (0,)

    # Idempotent: nothing left to revoke or delete, the first record's time is kept.
    again = dc.disconnect(connected, "ga4", revoke_endpoint=revoke_server.url)
    assert revoke_server.tokens == [GA4_TOKEN] and again.deleted_credentials == []
    assert tenants.get(connected).disconnected_sources["ga4"] == record

    # Reconnecting is configuring it to sync again.
    tenants.configure_source(connected, "ga4", {"kind": "demo", "size": "small"})
    assert "ga4" in tenants.synced_sources(tenants.get(connected))
    assert tenants.get(connected).disconnected_sources == {}


def test_google_ads_refresh_token_first_then_the_rest(connected, revoke_server):
    # Google ends a refresh token's access tokens with it: the access token then answers
    # invalid_token, which is done, not an error.
    revoke_server.revoked.add(ADS_ACCESS)
    report = dc.disconnect(connected, "google_ads", revoke_endpoint=revoke_server.url)
    assert revoke_server.tokens == [ADS_REFRESH, ADS_ACCESS]
    assert report.revoked == ["source.google_ads.refresh_token"]
    assert report.already_revoked == ["source.google_ads.access_token"]
    assert sorted(report.deleted_credentials) == [
        "source.google_ads.access_token", "source.google_ads.developer_token",
        "source.google_ads.refresh_token"]
    assert not [n for n in secret_store.names(connected) if n.startswith("source.google_ads.")]


def test_a_failed_revocation_keeps_the_token_for_a_retry(connected, revoke_server):
    revoke_server.status = 503
    with pytest.raises(dc.DisconnectError, match="run the disconnect again") as failed:
        dc.disconnect(connected, "ga4", revoke_endpoint=revoke_server.url)
    assert "CANARY" not in str(failed.value)
    assert "source.ga4.refresh_token" in secret_store.names(connected)
    assert "ga4" not in tenants.synced_sources(tenants.get(connected))  # syncing stopped anyway
    revoke_server.status = None
    report = dc.disconnect(connected, "ga4", revoke_endpoint=revoke_server.url)
    assert report.revoked == ["source.ga4.refresh_token"]
    assert revoke_server.tokens == [GA4_TOKEN, GA4_TOKEN]  # the failed call, then the retry


def test_shop_token_is_deleted_not_revoked_and_the_shop_domain_stays(connected, revoke_server):
    report = dc.disconnect(connected, "shop", revoke_endpoint=revoke_server.url)
    assert revoke_server.requests == []
    assert report.deleted_credentials == ["source.shop.access_token"] and report.revoked == []
    assert "uninstall" in report.notes[0]
    config = tenants.get(connected)
    assert config.sources["shop"] == {"shop_domain": "acme.myshopify.com"}
    assert "shop" not in tenants.synced_sources(config)


def test_deleting_the_tenant_revokes_its_oauth_tokens_at_the_provider(connected,
                                                                      revoke_server):
    """Tenant deletion revokes every OAuth token (GA4, Google Ads) before deleting the
    credentials; a provider that fails stops the run after the keys are destroyed, and the
    retry finishes it. The certificate names what was revoked at the provider."""
    from cleargro_pipeline.controls import deletion

    deletion.request(connected, reason="merchant left", source="cli")
    revoke_server.status = 503
    revoker = dc.provider_revoker(endpoint=revoke_server.url)
    with pytest.raises(oauth.RevokeFailed, match="HTTP 503"):
        deletion.run(connected, revoke=revoker)
    assert not (paths().registry / connected / "keys.json").exists()  # shredded already
    assert "source.ga4.refresh_token" in secret_store.names(connected)  # kept for the retry

    revoke_server.status = None
    certificate = deletion.verify_certificate(deletion.run(connected, revoke=revoker)).body
    assert sorted(set(revoke_server.tokens)) == sorted([GA4_TOKEN, ADS_REFRESH, ADS_ACCESS])
    assert SHOP_TOKEN not in revoke_server.tokens and "dev-token" not in revoke_server.tokens
    assert certificate["credentials_revoked_at_provider"] == [
        "source.ga4.refresh_token", "source.google_ads.access_token",
        "source.google_ads.refresh_token"]
    assert "CANARY" not in json.dumps(certificate)


def test_only_sources_can_be_disconnected(connected):
    with pytest.raises(dc.DisconnectError, match="cannot disconnect 'app'"):
        dc.disconnect(connected, "app")


# --- --delete-data on a private copy of the demo --------------------------------------------------

OTHER_MARTS = ("fct_daily_sales", "fct_orders", "fct_order_lines", "fct_ads_campaign_daily",
               "fct_ads_search_term_daily", "dim_variants")
GA4_MARTS = ("fct_ga4_item_daily", "fct_ga4_traffic_daily")


def _digest(conn, relation: str) -> tuple[int, str]:
    rows = conn.execute(f"select * exclude (_source_load_id) from {relation}" if "_source_load_id" in
                        [c for (c,) in conn.execute(f"select column_name from (describe {relation})"
                                                    ).fetchall()]
                        else f"select * from {relation}").fetchall()
    return len(rows), hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()


@pytest.fixture(scope="module")
def demo_copy(built_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("disconnect")
    with private_demo(built_demo, root):
        yield "demo"


def test_delete_data_drops_the_source_and_its_marts_and_the_tenant_still_builds(
        demo_copy, revoke_server):
    tenant = demo_copy
    secret_store.put(tenant, dc.credential_name("ga4", "refresh_token"), GA4_TOKEN)
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        before = {m: _digest(conn, f"marts.{m}") for m in OTHER_MARTS}
        assert all(conn.execute(f"select count(*) from marts.{m}").fetchone()[0] > 0
                   for m in GA4_MARTS)
    size_before = paths().warehouse(tenant).stat().st_size

    report = dc.disconnect(tenant, "ga4", delete_data=True, revoke_endpoint=revoke_server.url)
    assert revoke_server.tokens == [GA4_TOKEN]
    assert report.data_deleted and report.rebuilt and report.dropped[0] == "raw_ga4"
    assert report.file_bytes and report.file_bytes < size_before

    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        schemas = {s for (s,) in conn.execute(
            "select schema_name from duckdb_schemas() where database_name = 'wh'").fetchall()}
        assert "raw_ga4" not in schemas and "raw_ga4_staging" not in schemas
        assert {"raw_shop", "raw_google_ads", "raw_app"} <= schemas
        for relation in [f"marts.{m}" for m in GA4_MARTS] + ["staging.stg_ga4__items_daily",
                                                              "staging.stg_ga4__traffic_daily"]:
            assert conn.execute(f"select count(*) from {relation}").fetchone() == (0,), relation
        assert {m: _digest(conn, f"marts.{m}") for m in OTHER_MARTS} == before
    assert tenants.get(tenant).disconnected_sources["ga4"]["data_deleted"] is True
    assert [e for e in _audit() if e["action"] == "source_data_deleted"]

    # The whole tenant still builds through Dagster, and its next run loads no GA4 data.
    from cleargro_pipeline.defs.jobs import tenant_selection
    from cleargro_pipeline.runner import materialize_tenant

    assert not [k for k in tenant_selection(tenant) if k.path[0] == "raw_ga4"]
    materialize_tenant(tenant)
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        assert conn.execute("select count(*) from duckdb_schemas() where database_name = 'wh' "
                            "and schema_name = 'raw_ga4'").fetchone() == (0,)
        assert {m: _digest(conn, f"marts.{m}") for m in OTHER_MARTS} == before
        assert conn.execute("select count(*) from insights.opportunities").fetchone()[0] > 0
