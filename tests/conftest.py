"""Shared fixtures: every test gets its own data/ folder and master key."""

from __future__ import annotations

import base64
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cleargro_pipeline import tenants, warehouse
from cleargro_pipeline.security import keys

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "audit_tampered: the test breaks its audit log on purpose")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             request: pytest.FixtureRequest) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("CLEARGRO_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.setenv(keys.MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CLEARGRO_PRINCIPAL", "pytest")
    yield data
    # Whatever the test did (requests, jobs, key destruction, exports, restores, webhooks),
    # its audit log must still verify: `cleargro audit verify` after the whole suite.
    if request.node.get_closest_marker("audit_tampered") is None:
        from cleargro_pipeline.security import audit

        log = data / "audit" / "audit.log"
        if log.exists():
            audit.verify(log)


@pytest.fixture
def tenant(data_dir: Path) -> str:
    tenants.add("acme")
    return "acme"


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The small demo tenant 'demo', materialized once per session through Dagster.

    Returns the environment that points at it; use `demo_env` to enter it. Tests that
    only read (eval, reports, dbt unit tests) share it instead of rebuilding it.
    """
    data = tmp_path_factory.mktemp("built_demo") / "data"
    env = {"CLEARGRO_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"),
           keys.MASTER_KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
           "CLEARGRO_PRINCIPAL": "pytest"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        from cleargro_pipeline import bootstrap
        from cleargro_pipeline.runner import materialize_tenant

        bootstrap.init()
        tenants.add("demo", {s: {"kind": "demo", "size": "small", "seed": 7}
                             for s in tenants.SOURCE_NAMES})
        materialize_tenant("demo")
    yield env
    from cleargro_pipeline.security import audit

    audit.verify(data / "audit" / "audit.log")  # after every test that used it


@contextmanager
def private_demo(built_demo: dict[str, str], root: Path) -> Iterator[Path]:
    """A private copy of the session's demo (for tests that write to it or scan its folder),
    entered for the duration of the block; yields its data folder."""
    data = root / "data"
    shutil.copytree(built_demo["CLEARGRO_DATA_DIR"], data,
                    ignore=shutil.ignore_patterns("dagster_home", "work", "tmp", "*.lock"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**built_demo, "CLEARGRO_DATA_DIR": str(data),
                            "DAGSTER_HOME": str(data / "dagster_home")}.items():
            patch.setenv(name, value)
        yield data


@pytest.fixture
def demo_env(built_demo: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Enter the shared demo's environment; returns the tenant name."""
    for name, value in built_demo.items():
        monkeypatch.setenv(name, value)
    return "demo"
