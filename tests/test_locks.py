"""The file lock every module serialises on, held by a real second process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cleargro_pipeline.locks import LockTimeout, file_lock

HOLDER = """
import sys, time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from cleargro_pipeline.locks import file_lock
with file_lock(Path(sys.argv[1]), shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    time.sleep(600)
"""


@contextmanager
def _held_elsewhere(path: Path, mode: str) -> Iterator[None]:
    """Another process holds the lock for the block, then is SIGKILLed (never unlocks)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_an_exclusive_lock_waits_for_the_holder_then_names_the_file(tmp_path):
    path = tmp_path / "locks" / "work.lock"
    with _held_elsewhere(path, "exclusive"):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"work\.lock is held by another process"):
            with file_lock(path, timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3
        with pytest.raises(LockTimeout):
            with file_lock(path, shared=True, timeout=0):
                pass
    # The kernel released the lock of the killed holder: no stale lock.
    with file_lock(path, timeout=0) as held:
        assert held
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_shared_locks_coexist_and_keep_writers_out(tmp_path):
    path = tmp_path / "warehouse.lock"
    with _held_elsewhere(path, "shared"):
        with file_lock(path, shared=True, timeout=0) as held:
            assert held
        busy = RuntimeError("the caller's own error")
        with pytest.raises(RuntimeError) as raised:
            with file_lock(path, timeout=0.2, on_timeout=lambda: busy):
                pass
        assert raised.value is busy


def test_without_create_a_missing_lock_file_is_left_alone(tmp_path):
    path = tmp_path / "tenant" / "warehouse.lock"
    with file_lock(path, create=False, timeout=0) as held:
        assert held is False
    assert not path.parent.exists()
    path.parent.mkdir()
    path.touch()
    with _held_elsewhere(path, "exclusive"):
        with pytest.raises(LockTimeout):
            with file_lock(path, create=False, timeout=0):
                pass


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("not ours")
    link = tmp_path / "work.lock"
    os.symlink(target, link)
    with pytest.raises(OSError):
        with file_lock(link):
            pass
    assert target.read_text() == "not ours"
