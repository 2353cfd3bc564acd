"""Keyed pseudonyms of shopper ids: HMAC-SHA256 under a tenant's pseudonym key.

Pure: the caller owns the key (`keys.pseudonymiser` hands out a tenant's). Minimisation
(`sources/minimise.py`) applies it to every shopper id before anything touches disk.
"""

from __future__ import annotations

import hmac
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from cleargro_pipeline.errors import CleargroError

Pseudonymise = Callable[[pa.Array], pa.Array]


class InvalidPseudonymKey(CleargroError, ValueError):
    """A pseudonym key that cannot key an HMAC (empty)."""


def _keyed_hmac(key: bytes, prefix: bytes):  # type: ignore[no-untyped-def]
    """An HMAC-SHA256 state already keyed and fed `prefix`. Copying it skips re-keying, half
    the work of a fresh HMAC per value. OpenSSL's own HMAC object (CPython's _hashlib) avoids
    the pure-Python wrapper around it; the stdlib object is the fallback."""
    try:
        import _hashlib

        return _hashlib.hmac_new(key, prefix, "sha256")
    except (ImportError, AttributeError, ValueError):
        return hmac.new(key, prefix, "sha256")


def hmac_pseudonymiser(key: bytes, namespace: str, cache_size: int = 1_000_000) -> Pseudonymise:
    """Lowercase hex HMAC-SHA256 of `namespace:value`, null for null.

    Pure: the caller owns the key. Hashes each distinct value once per call and remembers
    up to `cache_size` of them across calls, since chunks of one load repeat shoppers.
    """
    if not key:
        raise InvalidPseudonymKey("pseudonym key must not be empty")
    keyed = _keyed_hmac(key, f"{namespace}:".encode())
    # The cache as aligned Arrow arrays (id -> digest), one pair per kind of id: lookups stay
    # vectorised (integer ids hash several times faster than their text), and only ids never
    # seen before go through Python to be hashed.
    known: dict[pa.DataType, tuple[pa.Array, pa.Array]] = {}

    def digest(text: str) -> str:
        state = keyed.copy()
        state.update(text.encode())
        return state.hexdigest()

    def digests_of(ids: pa.Array) -> pa.Array:
        kind = pa.int64() if pa.types.is_integer(ids.type) else pa.string()
        ids = ids.cast(kind)
        known_ids, known_digests = known.get(kind, (ids.slice(0, 0), pa.array([], pa.string())))
        where = pc.index_in(ids, value_set=known_ids)
        missing = pc.filter(ids, pc.is_null(where))
        if len(missing):
            if len(known_ids) + len(missing) > cache_size:
                # Bounded memory: a clean slate costs one re-hash per id.
                known_ids, known_digests, missing = ids.slice(0, 0), known_digests.slice(0, 0), ids
            # The hashed text is the id's decimal or string form, whatever its type.
            hashed = pa.array(map(digest, missing.cast(pa.string()).to_pylist()), pa.string())
            known_ids = pa.concat_arrays([known_ids, missing])
            known_digests = pa.concat_arrays([known_digests, hashed])
            known[kind] = known_ids, known_digests
            where = pc.index_in(ids, value_set=known_ids)
        return pc.take(known_digests, where)

    def pseudonymise(values: pa.Array) -> pa.Array:
        # Work on distinct ids in their own type (integers dedupe and look up fastest).
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        distinct = pc.unique(values).drop_null()
        return pc.take(digests_of(distinct), pc.index_in(values, value_set=distinct))

    return pseudonymise
