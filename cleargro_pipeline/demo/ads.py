"""Google Ads: account layout (campaigns, keywords, search terms, advertised products)
and one month of daily metrics.

Campaign metrics are the sums of their children (keywords for Search, products for
Shopping); each campaign-day's conversion value is scaled so the campaign hits its
planned ROAS, which is what keeps non-planted campaigns clear of the opportunity rules.
A product's share of that value follows its spend times a bounded factor (0.95-1.05), so
every product's ROAS stays near its campaign's and clears its margin (see catalog.py for
the clearance campaign); only planted money-losing products get a tiny factor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from . import words
from .catalog import Catalog, SizeSpec
from .columns import build, dates, int_str, join, strings

ADS_SHARE, MEAN_ROAS, AOV_GUESS = 0.30, 5.5, 90.0  # paid search drives ~30% of revenue
MATCH = ["EXACT", "PHRASE", "BROAD"]
# (name, channel, share of account spend, keyword category or None for brand)
CAMPAIGNS = [
    ("Search | Brand", "SEARCH", 0.10, None),
    ("Search | Home Textiles", "SEARCH", 0.18, "Home Textiles"),
    ("Search | Kitchen & Dining", "SEARCH", 0.12, "Kitchen & Dining"),
    ("Search | Apparel", "SEARCH", 0.15, "Apparel"),
    ("Shopping | All Products", "SHOPPING", 0.25, None),
    ("Shopping | Bestsellers", "SHOPPING", 0.12, None),
    ("Shopping | Clearance", "SHOPPING", 0.08, None),
]
BELOW_TARGET, BUDGET_LIMITED = (2, 6), (3, 5)  # campaign indexes planted with incidents
NORMAL_SEARCH = (0, 1)  # where planted wasted keywords live
TERM_HOST_CAMPAIGN = 1  # planted wasted search terms ride on its broad keywords
LIMITED_DAYS = 45  # budget-limited campaigns hit their budget over the last 45 days
CAMPAIGN_ID0, AD_GROUP_ID0, CRITERION_ID0 = 21_700_000_000, 152_000_000_000, 398_000_000_000


@dataclass
class AdsPlan:
    """The planted ads situations (empty without incidents)."""
    below_target: tuple[int, ...] = ()
    budget_limited: tuple[int, ...] = ()
    wasted_keywords: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    wasted_term_hosts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    wasted_term_texts: list[str] = field(default_factory=list)
    oos_products: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # product rows
    oos_from: int = 0  # day from which the out-of-stock products cannot convert
    losing_products: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # product rows
    losing_rho: np.ndarray = field(default_factory=lambda: np.zeros(0))  # their value factor


@dataclass
class AdsLayout:
    roas: np.ndarray  # planned ROAS per campaign (normal values; the plan overrides)
    cr: np.ndarray
    budget_factor: np.ndarray
    kw_campaign: np.ndarray
    kw_ad_group: np.ndarray
    kw_text: list[str]
    kw_match: np.ndarray
    kw_weight: np.ndarray  # share of its campaign's spend
    kw_cpc: np.ndarray  # dollars
    term_kw: np.ndarray
    term_text: list[str]
    term_share: np.ndarray
    prod_variant: np.ndarray
    prod_campaign: np.ndarray
    prod_weight: np.ndarray
    prod_cpc: np.ndarray
    prod_rho: np.ndarray  # value share factor per product (bounded)

    @property
    def channel(self) -> list[str]:
        return [c[1] for c in CAMPAIGNS]


def build_layout(rng: np.random.Generator, cat: Catalog, spec: SizeSpec) -> AdsLayout:
    n_c = len(CAMPAIGNS)
    roas = rng.uniform(5.0, 6.5, n_c)  # comfortably above target 4.0
    cr = rng.uniform(0.03, 0.05, n_c)
    kw_campaign, kw_text = [], []
    per_campaign = spec.ad_groups * spec.keywords
    for c, (_, channel, _, category) in enumerate(CAMPAIGNS):  # loop per campaign
        if channel != "SEARCH":
            continue
        if category is None:
            pool = [f"cleargro {n.lower()}" for _, nouns in words.CATEGORIES.values() for n in nouns]
            pool += [f"cleargro {m.lower()} {n.lower()}" for m, n in zip(*_pairs())]
        else:
            mats, nouns = words.CATEGORIES[category]
            pool = [f"{m.lower()} {n.lower()}" for m in mats for n in nouns]
        pool = list(dict.fromkeys(pool))
        pick = rng.choice(len(pool), per_campaign, replace=False)
        kw_text += [pool[i] for i in pick]
        kw_campaign += [c] * per_campaign
    kw_campaign = np.array(kw_campaign)
    n_k = len(kw_text)
    kw_ad_group = kw_campaign * 100 + np.arange(n_k) % per_campaign // spec.keywords
    kw_match = rng.choice(3, n_k, p=[0.35, 0.35, 0.3])
    kw_match[np.arange(n_k) % spec.keywords == 0] = 2  # every ad group has a broad keyword
    kw_weight = _normalise(rng.lognormal(0, 0.8, n_k), kw_campaign)
    kw_cpc = (AOV_GUESS * cr / roas)[kw_campaign] * rng.lognormal(0, 0.25, n_k)

    term_kw, term_text = [], []
    for k, text in enumerate(kw_text):  # three search terms per keyword
        extra = rng.choice(np.arange(1, len(words.TERM_TEMPLATES)), 2, replace=False)
        for t in (0, *extra):
            term_kw.append(k)
            term_text.append(words.TERM_TEMPLATES[t].format(kw=text))
    term_kw = np.array(term_kw)
    term_share = (rng.dirichlet([3, 1.5, 1.5], n_k) * 0.85).ravel()  # Google hides ~15% as "other"

    # Advertised: the popular head plus a random slice of the tail.
    n_adv = min(spec.advertised, cat.n_variants // 2)
    by_pop = np.argsort(-cat.popularity, kind="stable")
    head = by_pop[: int(n_adv * 0.7)]
    tail = rng.choice(by_pop[len(head):], n_adv - len(head), replace=False)
    prod_variant = np.sort(np.r_[head, tail])
    top = np.isin(prod_variant, by_pop[: max(5, n_adv // 10)])
    prod_campaign = np.where(top, 5, np.where(cat.has_compare[prod_variant], 6, 4))
    prod_weight = _normalise(cat.popularity[prod_variant] ** 0.8, prod_campaign)
    prod_cpc = (AOV_GUESS * cr / roas)[prod_campaign] * rng.lognormal(0, 0.25, n_adv)
    budget_factor = rng.uniform(1.4, 1.8, n_c)
    return AdsLayout(roas=roas, cr=cr, budget_factor=budget_factor, prod_rho=rng.uniform(0.95, 1.05, n_adv),
                     kw_campaign=kw_campaign, kw_ad_group=kw_ad_group, kw_text=kw_text,
                     kw_match=kw_match, kw_weight=kw_weight, kw_cpc=kw_cpc,
                     term_kw=term_kw, term_text=term_text, term_share=term_share,
                     prod_variant=prod_variant, prod_campaign=prod_campaign,
                     prod_weight=prod_weight, prod_cpc=prod_cpc)


def _pairs():
    mats, nouns = [], []
    for ms, ns in words.CATEGORIES.values():
        for m in ms:
            for n in ns:
                mats.append(m)
                nouns.append(n)
    return mats, nouns


def _normalise(w: np.ndarray, group: np.ndarray) -> np.ndarray:
    totals = np.bincount(group, weights=w)
    return w / totals[group]


def campaign_roas(layout: AdsLayout, plan: AdsPlan, rng: np.random.Generator) -> np.ndarray:
    """Planned ROAS per campaign: planted ones far below target or well above it. A
    Shopping campaign below target stays above 2.4: its products' margins (>= 0.64) keep
    each of them clear of the negative-margin rule."""
    roas = layout.roas.copy()
    for c in plan.below_target:
        roas[c] = rng.uniform(2.4, 2.6) if CAMPAIGNS[c][1] == "SHOPPING" else rng.uniform(1.6, 2.3)
    for c in plan.budget_limited:
        roas[c] = rng.uniform(6.0, 7.5)
    return roas


@dataclass
class AdsMonth:
    campaign: pa.Table
    shopping: pa.Table
    keyword: pa.Table
    search_term: pa.Table


def _micros(dollars: np.ndarray) -> np.ndarray:
    return np.round(dollars * 1e6).astype(np.int64)


def generate_month(layout: AdsLayout, plan: AdsPlan, roas: np.ndarray, rng: np.random.Generator,
                   days: np.ndarray, spend: np.ndarray, last_day: int, keep: np.ndarray,
                   item_ids: pa.Array) -> AdsMonth:
    """`spend`: account spend per day (dollars: expected, times a planted spike); `keep`: share
    of each day's conversions (and their value) that are recorded: below 1 on the planted
    checkout outage and order drop, the ROAS-drop week and the spend spike (incidents.py)."""
    n_d, n_c = len(days), len(CAMPAIGNS)
    camp_spend = spend[:, None] * np.array([c[2] for c in CAMPAIGNS])[None, :]
    conv_keep = np.asarray(keep, float)[:, None]

    # keywords (D x K)
    lam = camp_spend[:, layout.kw_campaign] * layout.kw_weight / layout.kw_cpc
    cpc = np.broadcast_to(layout.kw_cpc, lam.shape).copy()
    wasted = np.zeros(len(layout.kw_text), bool)
    wasted[plan.wasted_keywords] = True
    # Wasted keywords: many clicks (>= 8/day) for ~1% of account spend, never a conversion.
    lam[:, wasted] = np.maximum(8.0, 0.01 * spend[:, None] / 0.6)
    cpc[:, wasted] = 0.01 * spend[:, None] / lam[:, wasted]
    k_clicks = rng.poisson(lam)
    k_clicks = np.where(wasted, k_clicks, np.maximum(1, k_clicks))  # live keywords click daily
    k_cost = _micros(k_clicks * cpc * rng.lognormal(0, 0.1, lam.shape))
    k_impr = k_clicks + rng.poisson(lam * (1 / 0.05 - 1))
    k_conv = np.where(wasted, 0.0, k_clicks * layout.cr[layout.kw_campaign] * rng.lognormal(0, 0.3, lam.shape))

    # planted wasted search terms ride on a broad keyword: ~4% of account spend, no conversions
    n_t = len(plan.wasted_term_hosts)
    t_lam = np.maximum(3.0, 0.04 * spend[:, None] / 0.9) * np.ones((1, n_t))
    t_clicks = rng.poisson(t_lam)
    t_cost = _micros(t_clicks * 0.04 * spend[:, None] / t_lam * rng.lognormal(0, 0.1, t_lam.shape))
    t_impr = t_clicks + rng.poisson(t_lam * 12)

    # shopping products (D x P)
    # Every advertised product gets a click most days: no single day (the outage day) can
    # dominate its 30-day ROAS.
    p_lam = np.maximum(camp_spend[:, layout.prod_campaign] * layout.prod_weight / layout.prod_cpc, 0.7)
    busy = np.r_[plan.oos_products, plan.losing_products]  # planted products get steady clicks
    p_lam[:, busy] = np.maximum(p_lam[:, busy], 3.0)
    p_clicks = rng.poisson(p_lam)
    p_clicks[:, busy] = np.maximum(p_clicks[:, busy], 1)
    p_cost = _micros(p_clicks * layout.prod_cpc * rng.lognormal(0, 0.1, p_lam.shape))
    p_impr = p_clicks + rng.poisson(p_lam * (1 / 0.012 - 1))
    rho = np.broadcast_to(layout.prod_rho, p_lam.shape).copy()
    rho[:, plan.losing_products] = plan.losing_rho
    rho[np.ix_(days >= plan.oos_from, plan.oos_products)] = 0.0  # nothing to sell: no conversions
    p_conv = p_clicks * layout.cr[layout.prod_campaign] * rng.lognormal(0, 0.3, p_lam.shape) * rho
    p_share = p_cost * rho  # a product's share of its campaign-day's value

    # Scale each campaign-day's conversion value to its planned ROAS.
    kw_cost_all = k_cost.copy()
    np.add.at(kw_cost_all, (slice(None), plan.wasted_term_hosts), t_cost)
    cost_cd = np.zeros((n_d, n_c))
    np.add.at(cost_cd.T, layout.kw_campaign, kw_cost_all.T / 1e6)
    np.add.at(cost_cd.T, layout.prod_campaign, p_cost.T / 1e6)
    raw_cd = np.zeros((n_d, n_c))
    np.add.at(raw_cd.T, layout.kw_campaign, k_conv.T)
    np.add.at(raw_cd.T, layout.prod_campaign, p_share.T)
    target = roas[None, :] * rng.uniform(0.9, 1.1, (n_d, n_c)) * cost_cd * conv_keep
    value_per_conv = np.divide(target, raw_cd, out=np.zeros_like(target), where=raw_cd > 0)
    k_value = k_conv * value_per_conv[:, layout.kw_campaign]
    p_value = p_share * value_per_conv[:, layout.prod_campaign]
    k_conv, p_conv = k_conv * conv_keep, p_conv * conv_keep

    k_clicks_all = k_clicks.copy()
    np.add.at(k_clicks_all, (slice(None), plan.wasted_term_hosts), t_clicks)
    k_impr_all = k_impr.copy()
    np.add.at(k_impr_all, (slice(None), plan.wasted_term_hosts), t_impr)

    camp = _campaign_rows(layout, plan, rng, days, camp_spend, last_day,
                          [(layout.kw_campaign, kw_cost_all, k_impr_all, k_clicks_all, k_conv, k_value),
                           (layout.prod_campaign, p_cost, p_impr, p_clicks, p_conv, p_value)])
    keyword = _keyword_rows(layout, days, kw_cost_all, k_impr_all, k_clicks_all, k_conv, k_value)
    shopping = _shopping_rows(layout, days, p_cost, p_impr, p_clicks, p_conv, p_value, item_ids)
    terms = _term_rows(layout, plan, rng, days, (k_cost, k_impr, k_clicks, k_conv, k_value),
                       (t_cost, t_impr, t_clicks))
    return AdsMonth(campaign=camp, shopping=shopping, keyword=keyword, search_term=terms)


def _grid(days, n):
    return np.repeat(days, n), np.tile(np.arange(n), len(days))


def _campaign_rows(layout, plan, rng, days, camp_spend, last_day, children):
    n_d, n_c = camp_spend.shape
    sums = [np.zeros((n_d, n_c)) for _ in range(5)]
    for group, *metrics in children:
        for s, metric in zip(sums, metrics):
            np.add.at(s.T, group, metric.T)
    cost, impr, clicks, conv, value = sums
    limited = np.zeros((n_d, n_c), bool)
    recent = days > last_day - LIMITED_DAYS
    for c in plan.budget_limited:
        limited[recent, c] = True
    budget = np.where(limited, camp_spend * 1.0,
                      camp_spend.mean(axis=0) * layout.budget_factor[None, :])
    lost = np.where(limited, rng.uniform(0.15, 0.30, (n_d, n_c)), rng.uniform(0.0, 0.04, (n_d, n_c)))
    share = np.where(limited, rng.uniform(0.40, 0.60, (n_d, n_c)), rng.uniform(0.55, 0.85, (n_d, n_c)))
    d, c = _grid(days, n_c)
    names = [x[0] for x in CAMPAIGNS]
    return build("raw_google_ads", "campaign_daily", {
        "segments.date": dates(d), "campaign.id": pa.array(CAMPAIGN_ID0 + c),
        "campaign.name": strings(names, c), "campaign.status": strings(["ENABLED"], np.zeros_like(c)),
        "campaign.advertising_channel_type": strings(layout.channel, c),
        "campaign_budget.amount_micros": pa.array(_micros(np.round(budget, 2)).ravel()),
        "metrics.cost_micros": pa.array(np.round(cost).astype(np.int64).ravel()),
        "metrics.impressions": pa.array(impr.astype(np.int64).ravel()),
        "metrics.clicks": pa.array(clicks.astype(np.int64).ravel()),
        "metrics.conversions": pa.array(conv.ravel()), "metrics.conversions_value": pa.array(value.ravel()),
        "metrics.search_impression_share": pa.array(share.ravel()),
        "metrics.search_budget_lost_impression_share": pa.array(lost.ravel()),
    })


def _keyword_rows(layout, days, cost, impr, clicks, conv, value):
    d, k = _grid(days, len(layout.kw_text))
    return build("raw_google_ads", "keyword_daily", {
        "segments.date": dates(d), "campaign.id": pa.array(CAMPAIGN_ID0 + layout.kw_campaign[k]),
        "ad_group.id": pa.array(AD_GROUP_ID0 + layout.kw_ad_group[k]),
        "ad_group_criterion.criterion_id": pa.array(CRITERION_ID0 + k * 13),
        "ad_group_criterion.keyword.text": strings(layout.kw_text, k),
        "ad_group_criterion.keyword.match_type": strings(MATCH, layout.kw_match[k]),
        "metrics.cost_micros": pa.array(cost.ravel()), "metrics.impressions": pa.array(impr.ravel()),
        "metrics.clicks": pa.array(clicks.ravel()), "metrics.conversions": pa.array(conv.ravel()),
        "metrics.conversions_value": pa.array(value.ravel()),
    })


def _shopping_rows(layout, days, cost, impr, clicks, conv, value, item_ids):
    d, p = _grid(days, len(layout.prod_variant))
    keep = impr.ravel() > 0  # Google reports no row for a product without impressions
    d, p = d[keep], p[keep]
    return build("raw_google_ads", "shopping_product_daily", {
        "segments.date": dates(d), "campaign.id": pa.array(CAMPAIGN_ID0 + layout.prod_campaign[p]),
        "segments.product_item_id": item_ids.take(pa.array(p)),
        "metrics.cost_micros": pa.array(cost.ravel()[keep]), "metrics.impressions": pa.array(impr.ravel()[keep]),
        "metrics.clicks": pa.array(clicks.ravel()[keep]), "metrics.conversions": pa.array(conv.ravel()[keep]),
        "metrics.conversions_value": pa.array(value.ravel()[keep]),
    })


def _term_rows(layout, plan, rng, days, kw, planted):
    """Search terms split their keyword's traffic (so they convert iff it does);
    planted wasted terms add their own rows."""
    k_cost, k_impr, k_clicks, k_conv, k_value = kw
    kk = layout.term_kw
    clicks = rng.binomial(k_clicks[:, kk], layout.term_share)
    impr = clicks + rng.binomial(k_impr[:, kk] - k_clicks[:, kk], layout.term_share)
    frac = np.divide(clicks, k_clicks[:, kk], out=np.zeros(clicks.shape), where=k_clicks[:, kk] > 0)
    cost = np.round(k_cost[:, kk] * frac).astype(np.int64)
    conv, value = k_conv[:, kk] * frac, k_value[:, kk] * frac
    t_cost, t_impr, t_clicks = planted
    n_t = len(plan.wasted_term_hosts)
    texts = layout.term_text + plan.wasted_term_texts
    host = np.r_[kk, plan.wasted_term_hosts]
    cols = [np.hstack(x) for x in ((cost, t_cost), (impr, t_impr), (clicks, t_clicks),
                                   (conv, np.zeros(t_cost.shape)), (value, np.zeros(t_cost.shape)))]
    d, t = _grid(days, len(kk) + n_t)
    keep = cols[1].ravel() > 0
    d, t = d[keep], t[keep]
    return build("raw_google_ads", "search_term_daily", {
        "segments.date": dates(d), "campaign.id": pa.array(CAMPAIGN_ID0 + layout.kw_campaign[host[t]]),
        "ad_group.id": pa.array(AD_GROUP_ID0 + layout.kw_ad_group[host[t]]),
        "search_term_view.search_term": strings(texts, t),
        "metrics.cost_micros": pa.array(cols[0].ravel()[keep]), "metrics.impressions": pa.array(cols[1].ravel()[keep]),
        "metrics.clicks": pa.array(cols[2].ravel()[keep]), "metrics.conversions": pa.array(cols[3].ravel()[keep]),
        "metrics.conversions_value": pa.array(cols[4].ravel()[keep]),
    })


def product_item_ids(layout: AdsLayout, cat: Catalog) -> pa.Array:
    v = layout.prod_variant
    return join("shopify_us_", int_str(cat.product_id[cat.product[v]]), "_", int_str(cat.variant_id[v]))
