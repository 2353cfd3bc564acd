"""Two consecutive days through the real pipeline: an opportunity raised on both days stays
one row whose history spans them; one whose condition cleared turns resolved; the second
day's run evaluates only its own day."""

from __future__ import annotations

from datetime import date

from cleargro_pipeline import bootstrap, tenants, warehouse
from cleargro_pipeline.runner import materialize_tenant


def _demo(hold_back_days: int) -> dict:
    return {"kind": "demo", "size": "small", "seed": 7, "hold_back_days": hold_back_days}


def _query(tenant: str, sql: str) -> list[tuple]:
    with warehouse.open_warehouse(tenant, purpose="test", read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_opportunities_keep_their_identity_from_day_to_day(data_dir):
    bootstrap.init()
    tenants.add("daily", {system: _demo(1) for system in tenants.SOURCE_NAMES})
    materialize_tenant("daily")
    first = dict(_query("daily", "select opportunity_id, opportunity_type from insights.opportunities"))
    assert _query("daily", "select as_of_date from insights.int_insights__as_of") == [(date(2026, 11, 26),)]

    for system in tenants.SOURCE_NAMES:
        tenants.configure_source("daily", system, _demo(0))
    materialize_tenant("daily")
    rows = _query("daily", "select opportunity_id, first_detected_at, last_detected_at, status, as_of_date "
                           "from insights.opportunities")
    assert len(rows) == len({r[0] for r in rows})  # one row per opportunity
    assert {r[4] for r in rows} == {date(2026, 11, 27)}
    by_id = {r[0]: r for r in rows}
    kept = [by_id[i] for i in first if i in by_id and by_id[i][2] == date(2026, 11, 27)]
    assert kept, "some opportunities are raised on both days"
    assert all(r[1] == date(2026, 11, 26) for r in kept)
    cleared = [by_id[i] for i in first if by_id[i][2] == date(2026, 11, 26)]
    assert all(r[3] == "resolved" for r in cleared)
    new = [r for r in rows if r[0] not in first]
    assert all(r[1] == r[2] == date(2026, 11, 27) and r[3] in ("open", "actioned") for r in new)
    days = _query("daily", "select as_of_date, count(*) from insights.opportunity_history "
                           "group by 1 order by 1")
    assert [d for d, _ in days] == [date(2026, 11, 26), date(2026, 11, 27)]
    assert days[0][1] == len(first)
