"""In-app behaviour of the shop's team over the last eight weeks (the feedback loop).

Three users: the owner opens the weekly report every Monday, a marketer most weeks, a
stock manager now and then; each visit views a few opportunities that were live by then.
The owner actioned one planted opportunity five days ago and dismissed another 40 days
ago: its 30-day snooze has run out, so it is raised again. Nothing planted is dismissed
within the snooze window (that would hide it from the evaluation).
"""

from __future__ import annotations

import numpy as np

from .columns import US_PER_DAY

USERS = ["user-1", "user-2", "user-3"]
OPEN_P = [1.0, 0.75, 0.4]  # chance each user opens a given weekly report
WEEKS = 8
DISMISSED_DAYS_AGO, ACTIONED_DAYS_AGO = 40, 5
US_PER_MIN = 60_000_000


def app_events(rng: np.random.Generator, as_of: int, planted: list[tuple[str, int]],
               dismissed: str | None, actioned: str | None) -> list[tuple[int, str, str, str]]:
    """`planted` (opportunity id, first day it was live); `dismissed` / `actioned`: ids.
    Returns (ts µs, user, event, opportunity id or "") rows, sorted by time."""
    rows: list[tuple[int, str, str, str]] = []

    def visit(user: int, day: int, minute: int, views: list[str], then: tuple[str, str] | None = None):
        t = day * US_PER_DAY + minute * US_PER_MIN
        rows.append((t, USERS[user], "report_opened", ""))
        for opp in views:
            t += int(rng.integers(1, 9)) * US_PER_MIN
            rows.append((t, USERS[user], "opportunity_viewed", opp))
        if then is not None:
            t += int(rng.integers(2, 15)) * US_PER_MIN
            rows.append((t, USERS[user], then[0], then[1]))

    def live(day: int) -> list[str]:
        return [opp for opp, since in planted if since <= day]

    monday = as_of - (as_of + 3) % 7  # 1970-01-01 was a Thursday
    for w in range(WEEKS):
        day = monday - 7 * w
        for user, p in enumerate(OPEN_P):
            if rng.random() < p:
                pool = live(day)
                n = min(len(pool), int(rng.integers(1, 5)))
                views = [pool[i] for i in np.sort(rng.choice(len(pool), n, replace=False))] if n else []
                visit(user, day, int(rng.integers(7 * 60, 10 * 60)) + 20 * user, views)
    if dismissed is not None:
        visit(0, as_of - DISMISSED_DAYS_AGO, int(rng.integers(14 * 60, 16 * 60)), [dismissed],
              ("opportunity_dismissed", dismissed))
    if actioned is not None:
        visit(0, as_of - ACTIONED_DAYS_AGO, int(rng.integers(14 * 60, 16 * 60)), [actioned],
              ("opportunity_actioned", actioned))
    return sorted(rows)
