"""OAuth flows in progress (Shopify installs, Google consents): the `state` of each, and what
else its callback must match, kept server-side (in this process's memory) under a random
browser id that travels in a cookie. An entry is taken (removed) by the first callback that
presents its browser id, whatever the outcome, and is good for 10 minutes: a state cannot be
replayed, used from another browser, or used late."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

TTL_S = 600
MAX_PENDING = 10_000  # flows need a signed link to start: a bound, not a quota
Entry = TypeVar("Entry")


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
        self._pending: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, *, shop: str, tenant: str, base: str,
              scopes: tuple[str, ...]) -> tuple[str, PendingInstall]:
        """A new install: (browser id for the cookie, its pending entry with a fresh state)."""
        return self.hold(lambda state, expires: PendingInstall(
            state=state, shop=shop, tenant=tenant, base=base, scopes=tuple(scopes),
            expires=expires))

    def hold(self, build: Callable[[str, float], Entry]) -> tuple[str, Entry]:
        """A new flow: (browser id for the cookie, the entry `build(state, expires)` makes with
        a fresh state; the entry has `state` and `expired(now)`)."""
        browser = secrets.token_urlsafe(32)
        now = self.clock()
        pending = build(secrets.token_urlsafe(32), now + self.ttl_s)
        with self._lock:
            for key in [k for k, p in self._pending.items() if p.expired(now)]:
                del self._pending[key]
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            self._pending[browser] = pending
        return browser, pending

    def take(self, browser: str | None) -> Any:
        """The entry of this browser id, removed (None if there is none)."""
        if not browser:
            return None
        with self._lock:
            return self._pending.pop(browser, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


class UsedLinks:
    """Nonces of links already opened, until they expire: a link starts one consent only."""

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, nonce: str, expires: float) -> bool:
        """True the first time a nonce is claimed; `expires` is the link's (wall clock)."""
        now = time.time()
        with self._lock:
            for old in [n for n, until in self._used.items() if until <= now]:
                del self._used[old]
            if nonce in self._used:
                return False
            self._used[nonce] = expires
            return True
