"""Reports at rest: inside the tenant's encrypted warehouse, never as plaintext files.

`reports.documents` holds one row per period (the latest rendering replaces the earlier one)
with the whole HTML document. A plaintext copy leaves the warehouse only through
`export_html` / `export_pdf`, to a path the user names, and every export is audited.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from cleargro_pipeline.durable import write_atomic
from cleargro_pipeline.reports.metrics import relation_exists
from cleargro_pipeline.reports.periods import ReportError
from cleargro_pipeline.security import audit
from cleargro_pipeline.warehouse import open_warehouse, transaction

SCHEMA, TABLE = "reports", "documents"
QUALIFIED = f"{SCHEMA}.{TABLE}"
PURPOSE = "report"
DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {QUALIFIED} (
    report_id varchar not null,
    period_kind varchar not null,
    period varchar not null,
    period_start date not null,
    period_end date not null,
    as_of_date date not null,
    data_through date not null,
    generated_at timestamptz not null,
    sha256 varchar not null,
    size_bytes bigint not null,
    html varchar not null
)
"""
META_COLUMNS = ("report_id", "period_kind", "period", "period_start", "period_end", "as_of_date",
                "data_through", "generated_at", "sha256", "size_bytes")
CHROMIUM_ENV = "CLEARGRO_CHROMIUM"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
PDF_TIMEOUT_S = 120


@dataclass(frozen=True)
class StoredReport:
    id: str
    tenant: str
    period: str
    period_kind: str  # week | month
    period_start: date
    period_end: date
    as_of_date: date  # the tenant's latest complete day when the report was built
    data_through: date  # last day the figures cover (period end, or as_of_date if earlier)
    generated_at: datetime
    sha256: str
    size_bytes: int

    @property
    def is_complete(self) -> bool:
        return self.data_through >= self.period_end


def sha256(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()


def save(tenant: str, *, period_kind: str, period: str, period_start: date, period_end: date,
         as_of_date: date, data_through: date, generated_at: datetime, html: str) -> StoredReport:
    """Store a rendered report (replacing the period's earlier one) through a writer."""
    body = html.encode()
    stored = StoredReport(uuid.uuid4().hex, tenant, period, period_kind, period_start, period_end,
                          as_of_date, data_through, generated_at, hashlib.sha256(body).hexdigest(),
                          len(body))
    with open_warehouse(tenant, purpose=PURPOSE) as conn:
        conn.execute(DDL)
        with transaction(conn):
            conn.execute(f"delete from {QUALIFIED} where period = ?", [period])
            conn.execute(f"insert into {QUALIFIED} ({', '.join(META_COLUMNS)}, html) "
                         f"values ({', '.join('?' * (len(META_COLUMNS) + 1))})",
                         [stored.id, period_kind, period, period_start, period_end, as_of_date,
                          data_through, generated_at, stored.sha256, stored.size_bytes, html])
    audit.append("report_stored", tenant=tenant, purpose=PURPOSE, period=period,
                 report_id=stored.id, sha256=stored.sha256, size_bytes=stored.size_bytes)
    return stored


def _row(tenant: str, row: tuple) -> StoredReport:
    return StoredReport(row[0], tenant, row[2], row[1], *row[3:])


def _select(conn: duckdb.DuckDBPyConnection, where: str = "true", params: list | None = None,
            html: bool = False) -> list[tuple]:
    if not relation_exists(conn, SCHEMA, TABLE):
        return []
    columns = ", ".join(META_COLUMNS) + (", html" if html else "")
    return conn.execute(f"select {columns} from {QUALIFIED} where {where} "
                        "order by period_kind, period_start", params or []).fetchall()


def list_reports(tenant: str) -> list[StoredReport]:
    """Every stored report of the tenant (months, then weeks; oldest first), without the HTML."""
    with open_warehouse(tenant, purpose=PURPOSE, read_only=True) as conn:
        return [_row(tenant, r) for r in _select(conn)]


def load(tenant: str, period: str) -> tuple[StoredReport, str] | None:
    """The stored report of `period` and its HTML, or None."""
    with open_warehouse(tenant, purpose=PURPOSE, read_only=True) as conn:
        rows = _select(conn, "period = ?", [period], html=True)
    if not rows:
        return None
    row = rows[-1]
    return _row(tenant, row[:-1]), row[-1]


# --- plaintext exports (audited) ---------------------------------------------------------

def chromium() -> str | None:
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured
    for name in CHROMIUM_CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


def html_to_pdf(html: str, out: Path) -> None:
    """Print the document to PDF with headless Chromium.

    Chromium reads the page from a file: it sits in a private folder beside `out` (where the
    user asked for a plaintext copy anyway), with Chromium's throw-away profile, and the folder
    is removed whatever happens. The network is cut off twice: the page's CSP forbids every
    fetch, and Chromium resolves no host name.
    """
    exe = chromium()
    if not exe:
        raise ReportError("PDF export needs Chromium (Debian: apt-get install chromium; or set "
                          f"{CHROMIUM_ENV}); export as HTML works without it")
    work = Path(tempfile.mkdtemp(prefix=".cleargro-pdf-", dir=out.parent))
    try:
        page, pdf = work / "report.html", work / "report.pdf"
        fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(html)
        args = [exe, "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={work / 'profile'}", "--no-pdf-header-footer",
                f"--print-to-pdf={pdf}", page.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        try:
            done = subprocess.run(args, capture_output=True, timeout=PDF_TIMEOUT_S,
                                  env={**os.environ, "HOME": str(work)})
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print the PDF within {PDF_TIMEOUT_S} s") from None
        if done.returncode != 0 or not pdf.exists() or pdf.stat().st_size == 0:
            raise ReportError(f"Chromium could not print the PDF (exit {done.returncode})")
        write_atomic(out, pdf.read_bytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export(tenant: str, stored: StoredReport, html: str, out: Path, fmt: str) -> Path:
    """Write a plaintext copy to `out` (html or pdf) and record it in the audit log."""
    if fmt not in ("html", "pdf"):
        raise ReportError(f"unknown export format '{fmt}' (html or pdf)")
    out = Path(out).expanduser().resolve()
    if out.is_dir():
        raise ReportError(f"{out} is a folder; name the file to write")
    if not out.parent.is_dir():
        raise ReportError(f"folder {out.parent} does not exist")
    if fmt == "html":
        write_atomic(out, html.encode())
    else:
        html_to_pdf(html, out)
    audit.append("report_export", tenant=tenant, purpose="export", period=stored.period,
                 report_id=stored.id, sha256=stored.sha256, format=fmt, path=str(out),
                 size_bytes=out.stat().st_size)
    return out
