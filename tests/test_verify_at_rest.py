import gzip
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from cleargro_pipeline.security import verify_at_rest as var
from cleargro_pipeline.security.verify_at_rest import Finding, default_roots, scan

CANARY = "Acme Secret Shop 4242"
NOISE = b"lorem ipsum dolor sit amet " * 50


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def details(findings, kind="canary"):
    return [f.detail for f in findings if f.kind == kind]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_plain_file(tmp_path):
    write(tmp_path / "a" / "log.txt", NOISE + CANARY.encode() + NOISE)
    assert scan([tmp_path], [CANARY]) == [
        Finding(tmp_path / "a" / "log.txt", "canary", "canary #1 (utf-8) at raw bytes")
    ]


def test_gzip_file(tmp_path):
    data = gzip.compress(NOISE + CANARY.encode() + NOISE)
    assert CANARY.encode() not in data
    write(tmp_path / "jobs" / "part.jsonl.gz", data)
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at inside gzip"]


def test_concatenated_gzip_finds_canary_in_second_member(tmp_path):
    data = gzip.compress(NOISE) + gzip.compress(NOISE + CANARY.encode())
    assert CANARY.encode() not in gzip.GzipFile(fileobj=io.BytesIO(data)).read1(len(NOISE))
    write(tmp_path / "x.gz", data)
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at inside gzip"]


def test_zstd_file(tmp_path):
    # zstd keeps short literals verbatim; the near-copy makes the canary a back-reference.
    data = zstandard.ZstdCompressor().compress(NOISE + (CANARY[:-1] + "#" + CANARY).encode())
    assert CANARY.encode() not in data
    write(tmp_path / "x.zst", data)
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at inside zstd"]


def test_concatenated_zstd_frames(tmp_path):
    c = zstandard.ZstdCompressor()
    data = c.compress(NOISE) + c.compress((CANARY[:-1] + "#" + CANARY).encode())
    assert CANARY.encode() not in data
    write(tmp_path / "x.zst", data)
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at inside zstd"]


def test_zip_member(tmp_path):
    write(tmp_path / "export.zip", zip_bytes({"x/clean.csv": NOISE, "x/y.csv": NOISE + CANARY.encode()}))
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at zip member x/y.csv"]


def test_zip_inside_zip_and_gzip_inside_zip(tmp_path):
    inner = zip_bytes({"secret.txt": NOISE + CANARY.encode()})
    write(tmp_path / "outer.zip", zip_bytes({"inner.zip": inner, "p.gz": gzip.compress(CANARY.encode())}))
    found = details(scan([tmp_path], [CANARY]))
    assert "canary #1 (utf-8) at zip member inner.zip > zip member secret.txt" in found
    assert "canary #1 (utf-8) at zip member p.gz > inside gzip" in found


def _parquet_hiding(tmp_path, canary) -> Path:
    # The first value shares all but the last char with the canary, so snappy encodes the
    # canary as a back-reference: its bytes never appear contiguously in the file.
    near = canary[:-1] + "#"
    title = pa.array([near, canary] * 500).dictionary_encode()
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"title": title, "n": list(range(1000))}), path,
                   compression="snappy", use_dictionary=True, write_statistics=False)
    return path


def test_parquet_column_snappy_dictionary(tmp_path):
    path = _parquet_hiding(tmp_path, CANARY)
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert chunk.compression == "SNAPPY" and "RLE_DICTIONARY" in chunk.encodings
    raw = path.read_bytes()
    assert CANARY.encode() not in raw and CANARY.encode("utf-16-le") not in raw
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (text) at parquet column title"]


def test_parquet_nested_columns(tmp_path):
    table = pa.table({
        "lines": pa.array([[{"sku": "a", "name": "x"}], [{"sku": "b", "name": CANARY}]]),
        "attrs": pa.array([[("k", "v")], [("shop", "x")]], pa.map_(pa.string(), pa.string())),
        "tags": pa.array([["t"], [CANARY + " (vip)"]], pa.list_(pa.large_string())),
    })
    pq.write_table(table, tmp_path / "n.parquet", compression="zstd")
    found = details(scan([tmp_path], [CANARY]))
    assert "canary #1 (text) at parquet column lines" in found
    assert "canary #1 (text) at parquet column tags" in found
    assert not any("column attrs" in d for d in found)


def test_parquet_metadata(tmp_path):
    table = pa.table({"n": [1, 2]}).replace_schema_metadata({"source": CANARY})
    pq.write_table(table, tmp_path / "m.parquet")
    assert "canary #1 (utf-8) at parquet metadata" in details(scan([tmp_path], [CANARY]))


def test_parquet_inside_gzip(tmp_path):
    (tmp_path / "in").mkdir()
    data = _parquet_hiding(tmp_path / "in", CANARY).read_bytes()
    (tmp_path / "in" / "orders.parquet").unlink()
    write(tmp_path / "orders.parquet.gz", gzip.compress(data))
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (text) at inside gzip > parquet column title"]


def test_utf16le(tmp_path):
    write(tmp_path / "events.db", NOISE + CANARY.encode("utf-16-le") + NOISE)
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-16-le) at raw bytes"]


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_escaped(tmp_path, ensure_ascii):
    canary = 'Café "Bleu"'
    doc = json.dumps({"name": canary}, ensure_ascii=ensure_ascii).encode()
    assert canary.encode() not in doc
    write(tmp_path / "run.json", doc)
    assert details(scan([tmp_path], [canary])) == ["canary #1 (json-escaped) at raw bytes"]


def test_canary_across_chunk_boundary(tmp_path):
    data = bytearray(b"\0" * (var.CHUNK + 1024))
    at = var.CHUNK - 7
    data[at : at + len(CANARY)] = CANARY.encode()
    write(tmp_path / "big.bin", bytes(data))
    assert details(scan([tmp_path], [CANARY])) == ["canary #1 (utf-8) at raw bytes"]


def test_clean_tree_has_no_findings(tmp_path):
    write(tmp_path / "a.txt", NOISE)
    write(tmp_path / "b.gz", gzip.compress(NOISE))
    write(tmp_path / "c.zip", zip_bytes({"c.csv": NOISE}))
    pq.write_table(pa.table({"t": ["other shop"]}), tmp_path / "d.parquet")
    assert scan([tmp_path, tmp_path / "missing"], [CANARY, "another canary"]) == []


def test_several_canaries_by_index_and_sorted(tmp_path):
    write(tmp_path / "b.txt", b"second one")
    write(tmp_path / "a.txt", CANARY.encode())
    assert scan([tmp_path], [CANARY, "second"]) == [
        Finding(tmp_path / "a.txt", "canary", "canary #1 (utf-8) at raw bytes"),
        Finding(tmp_path / "b.txt", "canary", "canary #2 (utf-8) at raw bytes"),
    ]


def test_unencrypted_duckdb_is_reported(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 'x' AS s")
    assert [f.kind for f in scan([tmp_path])] == ["unencrypted_duckdb"]


def test_encrypted_duckdb_is_opaque(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    con.execute("LOAD httpfs")  # OpenSSL crypto; installed locally, never fetched
    con.execute(f"ATTACH '{path}' AS w (ENCRYPTION_KEY '{'ab' * 32}')")
    con.execute("CREATE TABLE w.t AS SELECT ? AS s FROM range(100)", [CANARY])
    con.execute("CHECKPOINT w")
    assert con.execute("SELECT count(*) FROM w.t WHERE s = ?", [CANARY]).fetchone() == (100,)
    con.execute("DETACH w")
    con.close()
    assert path.read_bytes()[8:12] == b"DUCK"
    assert scan([tmp_path], [CANARY]) == []


@pytest.mark.parametrize("name,data", [
    ("bad.gz", gzip.compress(NOISE)[:40] + b"\xff" * 40),
    ("trunc.gz", gzip.compress(NOISE)[:-12]),
    ("trunc.zst", zstandard.ZstdCompressor().compress(NOISE * 20)[:-5]),
    ("bad.zip", b"PK\x03\x04" + b"\x00" * 60),
    ("bad.parquet", b"PAR1" + b"\x00" * 60),
])
def test_corrupt_container_is_unreadable(tmp_path, name, data):
    write(tmp_path / name, data)
    assert [f.kind for f in scan([tmp_path], [CANARY])] == ["unreadable"]


def test_nesting_past_limit_is_unreadable(tmp_path):
    data = CANARY.encode()
    for _ in range(var.MAX_DEPTH + 1):
        data = gzip.compress(data)
    write(tmp_path / "deep.gz", data)
    assert [f.kind for f in scan([tmp_path], [CANARY])] == ["unreadable"]


def test_detail_never_echoes_content(tmp_path):
    write(tmp_path / "a.txt", b"ctx-before-" + CANARY.encode() + b"-ctx-after")
    write(tmp_path / "b.zip", zip_bytes({"m.csv": b"ctx-before-" + CANARY.encode()}))
    write(tmp_path / "c.gz", b"\x1f\x8b\x08ctx-before-")
    found = scan([tmp_path], [CANARY])
    assert {f.kind for f in found} == {"canary", "unreadable"}
    for f in found:
        assert "ctx" not in f.detail and CANARY not in f.detail and "4242" not in f.detail


def test_symlinks_out_of_root_are_not_followed(tmp_path):
    outside = write(tmp_path / "outside" / "s.txt", CANARY.encode())
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.txt")
    os.symlink(outside.parent, root / "linkdir")
    assert scan([root], [CANARY]) == []


def test_empty_canary_rejected(tmp_path):
    with pytest.raises(ValueError):
        scan([tmp_path], ["ok", ""])


def test_default_roots(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "cleargro-spill").mkdir()
    (tmp_path / "other").mkdir()
    data = tmp_path / "data"
    assert default_roots(data, [tmp_path / "dagster_home"]) == [
        data, tmp_path / "dagster_home", tmp_path / "cleargro-spill"]


def test_decompression_limit_is_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr(var, "MAX_EXPANDED", 1 << 20)
    zeros = b"\0" * (2 << 20)
    write(tmp_path / "bomb.gz", gzip.compress(zeros))
    write(tmp_path / "bomb.zst", zstandard.ZstdCompressor().compress(zeros))
    write(tmp_path / "bomb.zip", zip_bytes({"z.bin": zeros}))
    found = scan([tmp_path], [CANARY])
    assert [(f.path.name, f.kind) for f in found] == [
        ("bomb.gz", "unreadable"), ("bomb.zip", "unreadable"), ("bomb.zst", "unreadable")]
    assert all("more than 1 MiB decompressed" in f.detail for f in found)
