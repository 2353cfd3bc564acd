"""Dimension data: sizes, the product catalogue, locations and shopper identities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import words
from .columns import US_PER_DAY, int_str, join, strings


@dataclass(frozen=True)
class SizeSpec:
    products: int  # ~2.5 variants each
    orders: int  # over the two years
    ad_groups: int  # per search campaign
    keywords: int  # per ad group
    advertised: int  # most variants in shopping campaigns
    planted: int  # situations per entity-level kind


SIZES = {
    "small": SizeSpec(products=120, orders=20_000, ad_groups=3, keywords=5, advertised=150, planted=2),
    "medium": SizeSpec(products=2_000, orders=500_000, ad_groups=5, keywords=6, advertised=1_500, planted=3),
    "large": SizeSpec(products=20_000, orders=5_000_000, ad_groups=8, keywords=8, advertised=4_000, planted=3),
}


def size_spec(size: str) -> SizeSpec:
    if size not in SIZES:
        raise ValueError(f"unknown demo size {size!r}; valid sizes: {', '.join(SIZES)}")
    return SIZES[size]


@dataclass
class Catalog:
    # products (index p)
    product_id: np.ndarray
    title: pa.Array
    handle: pa.Array
    category: np.ndarray  # index into CATEGORY_NAMES
    vendor: np.ndarray
    product_created: np.ndarray  # µs
    product_updated: np.ndarray
    # variants (index v)
    variant_id: np.ndarray
    product: np.ndarray  # product index of each variant
    variant_title: pa.Array
    sku: pa.Array
    price: np.ndarray  # cents
    compare_at: np.ndarray  # cents, valid where has_compare
    has_compare: np.ndarray
    cost: np.ndarray  # cents
    deny: np.ndarray  # inventory_policy deny (else continue)
    inventory_item_id: np.ndarray
    variant_updated: np.ndarray
    popularity: np.ndarray  # probability a line item picks the variant
    cdf: np.ndarray
    # locations
    location_id: np.ndarray
    location_name: list[str]
    location_country: list[str]

    @property
    def n_variants(self) -> int:
        return len(self.variant_id)


CATEGORY_NAMES = list(words.CATEGORIES)


def _title_space():
    """Every (category, material, noun) triple; a title adds an adjective."""
    triples = [(c, m, n) for c, (mats, nouns) in enumerate(words.CATEGORIES.values())
               for m in mats for n in nouns]
    return triples, len(triples) * len(words.ADJECTIVES)


def build_catalog(rng: np.random.Generator, spec: SizeSpec, start_us: int, end_us: int) -> Catalog:
    triples, space = _title_space()
    if spec.products > space:
        raise ValueError(f"{spec.products} products exceed {space} distinct titles")
    combo = np.sort(rng.choice(space, spec.products, replace=False))
    adj, tri = combo % len(words.ADJECTIVES), combo // len(words.ADJECTIVES)
    # Titles are built per product (not per row of a fact table): loop is fine here.
    titles = [f"{words.ADJECTIVES[a]} {triples[t][1]} {triples[t][2]}" for a, t in zip(adj, tri)]
    category = np.array([triples[t][0] for t in tri])
    n_p = spec.products
    product_id = 7_400_000_000 + np.arange(n_p, dtype=np.int64) * 7
    product_created = start_us - rng.integers(30, 500, n_p) * US_PER_DAY - rng.integers(0, US_PER_DAY, n_p)
    product_updated = np.minimum(end_us - 1, start_us + rng.integers(0, 700, n_p) * US_PER_DAY)

    n_var = rng.choice([1, 2, 3, 4], n_p, p=[0.3, 0.25, 0.2, 0.25])
    product = np.repeat(np.arange(n_p), n_var)
    first = np.repeat(np.cumsum(n_var) - n_var, n_var)
    var_no = np.arange(len(product)) - first  # 0-based within product
    n_v = len(product)

    apparel = category[product] == CATEGORY_NAMES.index("Apparel")
    option = np.where(apparel, var_no, (var_no + rng.integers(0, 4, n_p)[product]) % len(words.COLOURS))
    single = n_var[product] == 1
    title_vocab = pa.array(list(words.COLOURS) + list(words.SIZES) + ["Default Title"])
    title_idx = np.where(single, len(title_vocab) - 1,
                         np.where(apparel, len(words.COLOURS) + var_no, option))
    sku = join("CG-", pc.utf8_lpad(int_str(product + 1), 5, "0"), "-", int_str(var_no + 1))

    # Prices end in .99; larger sizes cost a little more.
    base_dollars = np.clip(np.round(np.exp(rng.normal(np.log(38), 0.6, n_p))), 6, 450)
    price = ((base_dollars[product] + np.where(apparel & (var_no == 3), 4, 0)) * 100 - 1).astype(np.int64)
    has_compare = (rng.random(n_p) < 0.2)[product]
    compare_at = (np.round(price * rng.uniform(1.2, 1.5, n_p)[product] / 100) * 100 - 1).astype(np.int64)
    # Clearance items (with a compare-at price) were bought cheap: margin >= 0.64, so even in a
    # Shopping campaign below target ROAS their ads earn more than they cost.
    ratio = rng.uniform(0.3, 0.6, n_v)
    cost = np.round(price * np.where(has_compare, 0.3 + (ratio - 0.3) / 5, ratio)).astype(np.int64)
    deny = rng.random(n_v) < 0.9

    # Skewed popularity: a few bestsellers, a long tail.
    rank = rng.permutation(n_v)
    weight = 1.0 / (rank + 3.0) ** 1.05
    popularity = weight / weight.sum()

    n_loc = int(rng.integers(2, 4))
    loc_names = ["Main Warehouse", "East Coast Fulfilment", "Toronto Showroom"][:n_loc]
    loc_country = ["US", "US", "CA"][:n_loc]
    return Catalog(
        product_id=product_id, title=pa.array(titles), category=category,
        handle=pc.replace_substring(pc.utf8_lower(pa.array(titles)), " ", "-"),
        vendor=rng.integers(0, len(words.VENDORS), n_p),
        product_created=product_created, product_updated=product_updated,
        variant_id=40_100_000_000 + np.arange(n_v, dtype=np.int64) * 3, product=product,
        variant_title=title_vocab.take(pa.array(title_idx)), sku=sku,
        price=price, compare_at=compare_at, has_compare=has_compare, cost=cost, deny=deny,
        inventory_item_id=42_300_000_000 + np.arange(n_v, dtype=np.int64) * 3,
        variant_updated=np.maximum(product_created[product],
                                   end_us - rng.integers(1, 200, n_v) * US_PER_DAY),
        popularity=popularity, cdf=np.cumsum(popularity),
        location_id=65_000_000 + np.arange(n_loc, dtype=np.int64) * 11,
        location_name=loc_names, location_country=loc_country,
    )


def sample_variants(cat: Catalog, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cat.cdf, rng.random(n) * cat.cdf[-1]), cat.n_variants - 1)


# --- shoppers: identity is a pure function of the customer index, so orders can
# carry it without a join and every customer's email is unique (the index is in it).

def _mix(idx: np.ndarray) -> np.ndarray:
    return (np.asarray(idx, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(40503)) % np.uint64(2**32)


def shopper_identity(idx: np.ndarray) -> dict[str, pa.Array]:
    h = _mix(idx).astype(np.int64)
    first = strings(words.FIRST_NAMES, h % len(words.FIRST_NAMES))
    last = strings(words.LAST_NAMES, (h // len(words.FIRST_NAMES)) % len(words.LAST_NAMES))
    email = join(pc.utf8_lower(first), ".", pc.utf8_lower(last), ".", int_str(idx + 1), "@example.com")
    has_phone = (h >> 12) % 10 < 7
    phone = join("+1", int_str(201 + (h >> 16) % 789), int_str(1_000_000 + (h * 31) % 9_000_000))
    return {"first_name": first, "last_name": last, "email": email,
            "phone": strings(phone, valid=has_phone)}


def customer_ids(idx: np.ndarray) -> np.ndarray:
    return 6_200_000_000 + np.asarray(idx, dtype=np.int64) * 5
