# Every target sets up what it needs itself: uv (installed from PyPI if missing), .venv from
# uv.lock, DuckDB's httpfs extension, the local demo master key, DAGSTER_HOME, the dbt manifest.
.PHONY: setup demo test dev bench bench-fleet eval clean

export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

setup:
	@set -e; \
	if command -v uv >/dev/null 2>&1; then UV=uv; \
	else python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv; UV="python3 -m uv"; fi; \
	$$UV sync --frozen --python python3.11; \
	.venv/bin/cleargro init

demo: setup
	.venv/bin/cleargro demo --size $(or $(SIZE),small)

test: setup
	@# The report tests open the rendered page in headless Chromium (Debian's package; Playwright
	@# drives it, and never downloads a browser of its own).
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	.venv/bin/python -m pytest

dev: setup
	.venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: setup
	.venv/bin/python -m cleargro_pipeline.bench --size $(or $(SIZE),medium)

# One daily cycle of N small tenants through the daemon's run queue (tenant setup not timed);
# FLEET_DIR keeps the prepared tenants for another N.
bench-fleet: setup
	.venv/bin/python -m cleargro_pipeline.benchmarks.fleet --tenants $(or $(N),200) \
		$(if $(FLEET_DIR),--workdir $(FLEET_DIR))

eval: setup
	.venv/bin/python -m cleargro_pipeline.evaluation --size $(or $(SIZE),small)

clean:
	rm -rf data/keys data/registry data/audit data/tenants data/work data/dagster_home dbt_project/target
