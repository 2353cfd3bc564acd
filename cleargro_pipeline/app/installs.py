"""Installs in progress: the OAuth `state` of each, kept server-side (in this process's memory)
under a random browser id that travels in a cookie. An entry is taken (removed) by the first
callback that presents its browser id, whatever the outcome, and is good for 10 minutes: a
state cannot be replayed, used from another browser, or used late."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

TTL_S = 600
MAX_PENDING = 10_000  # installs need a valid Shopify signature to start: a bound, not a quota


@dataclass(frozen=True)
class PendingInstall:
    state: str
    shop: str
    tenant: str
    base: str  # the shop's Admin API base (its loopback endpoint in tests)
    scopes: tuple[str, ...]  # what the authorize redirect asked for
    expires: float  # on the store's clock

    def expired(self, now: float) -> bool:
        return now >= self.expires


class PendingInstalls:
    def __init__(self, ttl_s: float = TTL_S, max_pending: int = MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.max_pending, self.clock = ttl_s, max_pending, clock
        self._pending: OrderedDict[str, PendingInstall] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, *, shop: str, tenant: str, base: str,
              scopes: tuple[str, ...]) -> tuple[str, PendingInstall]:
        """A new install: (browser id for the cookie, its pending entry with a fresh state)."""
        browser = secrets.token_urlsafe(32)
        now = self.clock()
        pending = PendingInstall(state=secrets.token_urlsafe(32), shop=shop, tenant=tenant,
                                 base=base, scopes=tuple(scopes), expires=now + self.ttl_s)
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expired(now)]:
                del self._pending[key]
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            self._pending[browser] = pending
        return browser, pending

    def take(self, browser: str | None) -> PendingInstall | None:
        """The entry of this browser id, removed (None if there is none)."""
        if not browser:
            return None
        with self._lock:
            return self._pending.pop(browser, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
