"""Shared fixtures: every test gets its own data/ folder and master key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from cleargro_pipeline import keys, tenants, warehouse

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture
def shopify_fixtures() -> Path:
    """`../shared/fixtures/shopify`: real API responses, laid beside every checkout and CI clone."""
    folder = FIXTURES / "shopify"
    assert folder.exists(), f"{folder} is missing: the shared fixtures must sit beside the checkout"
    return folder


@pytest.fixture(scope="session", autouse=True)
def _httpfs_installed() -> None:
    warehouse.ensure_httpfs()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CLEARGRO_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv(keys.MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CLEARGRO_PRINCIPAL", "pytest")
    return data


@pytest.fixture
def tenant(data_dir: Path) -> str:
    tenants.add("acme")
    return "acme"
