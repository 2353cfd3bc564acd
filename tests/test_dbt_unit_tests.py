"""dbt unit tests (every opportunity rule's and alert rule's positive and near-miss cases, the
opportunity state and feedback logic, alert episodes) run here, against the shared demo
warehouse for column types; tenant runs exclude them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from cleargro_pipeline.settings import DBT_PROJECT_DIR

CLEARGRO = str(Path(sys.executable).with_name("cleargro"))


def _declared_unit_tests() -> int:
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    return len(manifest.get("unit_tests", {}))


def test_every_dbt_unit_test_passes(demo_env):
    import os

    run = subprocess.run([CLEARGRO, "dbt", "--tenant", demo_env, "--", "test", "--select",
                          "test_type:unit"], capture_output=True, text=True, env=os.environ,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-5000:]
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", run.stdout)
    assert done, run.stdout[-2000:]
    passed, _, errors, skipped = map(int, done.groups())
    assert errors == 0 and skipped == 0
    # Two cases (positive, near miss) per rule at least, plus the state and feedback logic;
    # the same for the four alert rule models, plus their episodes.
    assert passed == _declared_unit_tests() >= 13 * 2 + 5 + 4 * 2 + 1
