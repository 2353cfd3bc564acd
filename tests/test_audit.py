import json

import pytest

from cleargro_pipeline.security import audit
from cleargro_pipeline.settings import paths

pytestmark = pytest.mark.audit_tampered  # these tests break the chain on purpose


@pytest.fixture
def log(data_dir):
    for i in range(5):
        audit.append("key_unwrapped", tenant="acme", purpose="ingest", n=i)
    return paths().audit_log


def _rewrite(log, lines):
    log.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


def test_intact_chain_verifies(log):
    result = audit.verify()
    assert result.entries == 5
    entries = audit.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(e["principal"] == "pytest" and e["purpose"] == "ingest" for e in entries)
    assert entries[1]["prev"] == entries[0]["hash"]


def test_edited_entry_is_named(log):
    entries = audit.entries()
    entries[2]["purpose"] = "query"
    _rewrite(log, entries)
    with pytest.raises(audit.AuditChainBroken, match=r"line 3 \(seq 3\).*edited"):
        audit.verify()


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(log):
    entries = audit.entries()
    entries[1]["tenant"] = "other"
    entries[1]["hash"] = audit._entry_hash(entries[1])
    _rewrite(log, entries)
    with pytest.raises(audit.AuditChainBroken, match=r"line 3 \(seq 3\).*previous-hash"):
        audit.verify()


def test_deleted_entry_is_named(log):
    entries = audit.entries()
    del entries[1]
    _rewrite(log, entries)
    with pytest.raises(audit.AuditChainBroken, match=r"line 2 \(seq 3\)"):
        audit.verify()


def test_deleted_last_entry_is_detected(log):
    _rewrite(log, audit.entries()[:-1])
    with pytest.raises(audit.AuditChainBroken, match="ends at seq 4 but the head records seq 5"):
        audit.verify()


def test_reordered_entries_are_named(log):
    entries = audit.entries()
    entries[1], entries[2] = entries[2], entries[1]
    _rewrite(log, entries)
    with pytest.raises(audit.AuditChainBroken, match=r"line 2 \(seq 3\)"):
        audit.verify()
