"""Credentials at rest: sealed under the master key, bound to their scope and name, audited by name."""

import base64
import json
import stat

import pytest

from cleargro_pipeline.security import audit, secret_store
from cleargro_pipeline.settings import paths

VALUE = "s3cr3t-Relay-Passw0rd!"


def _file(scope):
    return paths().registry / ("_platform" if scope == "platform" else scope) / "secrets.json"


def test_round_trip_names_and_delete(data_dir):
    secret_store.put("platform", "smtp_password", VALUE)
    secret_store.put("acme", "shopify_token", "shpat_abc")
    secret_store.put("acme", "ga4_key", "first")
    secret_store.put("acme", "ga4_key", "second")  # replace
    assert secret_store.get("platform", "smtp_password", purpose="smtp_login") == VALUE
    assert secret_store.get("acme", "ga4_key") == "second"
    assert secret_store.names("acme") == ["ga4_key", "shopify_token"]
    assert secret_store.names("platform") == ["smtp_password"]
    assert secret_store.names("other") == []

    secret_store.delete("acme", "ga4_key")
    assert secret_store.names("acme") == ["shopify_token"]
    assert secret_store.delete_scope("acme") == ["shopify_token"]
    assert secret_store.names("acme") == [] and not _file("acme").exists()
    assert secret_store.get("platform", "smtp_password") == VALUE  # other scopes untouched


def test_file_is_private_sealed_and_audited_by_name_only(data_dir):
    secret_store.put("platform", "smtp_password", VALUE)
    secret_store.get("platform", "smtp_password", purpose="smtp_login")
    secret_store.delete("platform", "smtp_password")
    secret_store.put("platform", "smtp_password", VALUE)

    target = _file("platform")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    raw = target.read_bytes()
    for form in (VALUE.encode(), base64.b64encode(VALUE.encode()), VALUE.encode().hex().encode()):
        assert form not in raw
    assert not list(target.parent.glob("*.tmp"))

    actions = [(e["action"], e["purpose"], e["detail"].get("name")) for e in audit.entries()]
    assert actions == [("secret_stored", None, "smtp_password"),
                       ("secret_read", "smtp_login", "smtp_password"),
                       ("secret_deleted", None, "smtp_password"),
                       ("secret_stored", None, "smtp_password")]
    assert VALUE not in paths().audit_log.read_text()
    audit.verify()


def test_sealed_value_moved_to_another_name_or_scope_does_not_open(data_dir):
    secret_store.put("acme", "shopify_token", VALUE)
    secret_store.put("acme", "ga4_key", "harmless")
    # Same file, the token's sealed record put in place of another name.
    document = json.loads(_file("acme").read_text())
    document["secrets"]["ga4_key"] = document["secrets"]["shopify_token"]
    _file("acme").write_text(json.dumps(document))
    with pytest.raises(secret_store.SecretUnreadable,
                       match="secret 'ga4_key' of scope 'acme' does not decrypt.*moved") as error:
        secret_store.get("acme", "ga4_key")
    assert VALUE not in str(error.value)

    # The whole file copied to another tenant's scope.
    _file("other").parent.mkdir(parents=True)
    _file("other").write_text(_file("acme").read_text())
    with pytest.raises(secret_store.SecretUnreadable, match="scope 'other'"):
        secret_store.get("other", "shopify_token")
    assert secret_store.get("acme", "shopify_token") == VALUE


def test_missing_secret_and_bad_names_are_named(data_dir):
    with pytest.raises(secret_store.SecretMissing,
                       match="no secret 'smtp_password' is stored for scope 'platform'"):
        secret_store.get("platform", "smtp_password")
    with pytest.raises(secret_store.SecretMissing, match="'nope'.*'acme'"):
        secret_store.delete("acme", "nope")
    with pytest.raises(secret_store.InvalidSecretName, match="scope"):
        secret_store.put("../etc", "x", "y")
    with pytest.raises(secret_store.InvalidSecretName, match="name"):
        secret_store.put("acme", "a/b", "y")
    assert not paths().registry.exists() or not list(paths().registry.rglob("secrets.json"))


def test_cli_reads_the_secret_from_stdin_and_lists_names_only(data_dir):
    from click.testing import CliRunner

    from cleargro_pipeline.cli import cli

    runner = CliRunner()
    stored = runner.invoke(cli, ["secrets", "set", "platform", "smtp_password"], input="s3cret-pw\n")
    assert stored.exit_code == 0, stored.output
    assert secret_store.get("platform", "smtp_password") == "s3cret-pw"
    listed = runner.invoke(cli, ["secrets", "list", "platform"])
    assert listed.output == "smtp_password\n"
    empty = runner.invoke(cli, ["secrets", "set", "platform", "other"], input="")
    assert empty.exit_code != 0 and "other" not in secret_store.names("platform")
