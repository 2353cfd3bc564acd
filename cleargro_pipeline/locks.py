"""Advisory file locks (flock): the one way modules serialise work across processes.

The kernel releases a lock the moment its holder dies, so a crashed process never leaves a
stale lock behind. Lock files are empty markers, created owner-only.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from cleargro_pipeline.errors import CleargroError

_POLL_S = 0.1


class LockTimeout(CleargroError, TimeoutError):
    """Another process kept the lock past the timeout; names the lock file."""


@contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float | None = None,
              create: bool = True,
              on_timeout: Callable[[], Exception] | None = None) -> Iterator[bool]:
    """Hold an flock on `path` for the block; yields whether a lock is held.

    `shared`: a reader's lock, held by many at once, never with an exclusive one.
    `timeout`: None waits as long as it takes; otherwise polls that many seconds (0: one try)
    and then raises `on_timeout()`, by default `LockTimeout`.
    `create=False` leaves a missing lock file alone and holds nothing (yields False): nobody
    can be holding a lock on a file that does not exist.
    """
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        if create:
            raise
        yield False
        return
    try:
        _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout, path, on_timeout)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, mode: int, timeout: float | None, path: Path,
             on_timeout: Callable[[], Exception] | None) -> None:
    if timeout is None:
        fcntl.flock(fd, mode)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise (on_timeout() if on_timeout else LockTimeout(
                    f"{path.name} is held by another process (waited {timeout:.0f} s)")) from None
            time.sleep(_POLL_S)
