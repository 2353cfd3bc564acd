import base64
import os

import pytest

from cleargro_pipeline import tenants
from cleargro_pipeline.security import audit, keys
from cleargro_pipeline.settings import paths


def test_tenant_keys_are_random_wrapped_and_audited(tenant):
    data_key = keys.unwrap_tenant_key(tenant, "data", "ingest")
    pseudonym_key = keys.unwrap_tenant_key(tenant, "pseudonym", "ingest")
    tenants.add("other")
    assert len(data_key) == 32 and data_key != pseudonym_key
    assert keys.unwrap_tenant_key("other", "data", "query") != data_key
    stored = (paths().registry / tenant / "keys.json").read_bytes()
    assert data_key not in stored and base64.b64encode(data_key) not in stored
    assert data_key.hex().encode() not in stored
    unwraps = [e for e in audit.entries() if e["action"] == "key_unwrapped"]
    assert [(e["tenant"], e["purpose"], e["detail"]["key_kind"]) for e in unwraps] == [
        ("acme", "ingest", "data"), ("acme", "ingest", "pseudonym"), ("other", "query", "data")]
    assert all(e["principal"] == "pytest" for e in unwraps)


def test_wrong_master_key_names_tenant(tenant, monkeypatch):
    monkeypatch.setenv(keys.MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(keys.KeyUnavailable, match="tenant 'acme'.*cannot unwrap the data key"):
        keys.unwrap_tenant_key(tenant, "data", "ingest")


def test_wrapped_key_does_not_unwrap_for_another_tenant(tenant):
    tenants.add("other")
    theirs = paths().registry / "other" / "keys.json"
    theirs.write_text((paths().registry / tenant / "keys.json").read_text())
    with pytest.raises(keys.KeyUnavailable, match="tenant 'other'"):
        keys.unwrap_tenant_key("other", "data", "ingest")


def test_bad_master_key_values(data_dir, monkeypatch):
    monkeypatch.setenv(keys.MASTER_KEY_ENV, "not base64!")
    with pytest.raises(keys.KeyUnavailable, match="not valid base64"):
        keys.master_key()
    monkeypatch.setenv(keys.MASTER_KEY_ENV, base64.b64encode(b"short").decode())
    with pytest.raises(keys.KeyUnavailable, match="5 bytes; 32 are required"):
        keys.master_key()


def test_local_master_key_file_is_private(data_dir, monkeypatch):
    monkeypatch.delenv(keys.MASTER_KEY_ENV)
    with pytest.raises(keys.KeyUnavailable, match="no master key"):
        keys.master_key()
    key_file = keys.ensure_local_master_key()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(keys.master_key()) == 32
    assert keys.ensure_local_master_key() == key_file  # idempotent: the key is not replaced
    text = key_file.read_text()  # one line of base64 that decodes to 32 bytes
    assert text.count("\n") == 1 and text.endswith("\n")
    assert len(base64.b64decode(text.strip(), validate=True)) == 32


def test_keys_are_never_replaced(tenant):
    with pytest.raises(keys.KeyUnavailable, match="refusing to replace"):
        keys.create_tenant_keys(tenant)


def test_destroy_shreds_the_keys_and_an_interrupted_write(tenant):
    key_file = paths().registry / tenant / "keys.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    interrupted = key_file.with_name(f".{key_file.name}.0123.tmp")  # as write_atomic names it
    interrupted.write_bytes(key_file.read_bytes())
    assert keys.destroy(tenant) is True
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["tenant.json"]
    for kind in keys.KEY_KINDS:
        with pytest.raises(keys.KeyUnavailable, match="no .* key is stored"):
            keys.unwrap_tenant_key(tenant, kind, "test")
    assert keys.destroy(tenant) is False  # nothing left: idempotent
